"""Model boxes back to page pixels and PDF points, per v1 mode: a box placed on a synthetic page, carried
through the mode's own preprocessing geometry to where the encoder sees it, normalised to 0-999 the way
DeepSeek does (over the page, not the padded view), comes back to within one pixel."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from rtprune.deepseek.geometry import (
    crop_box,
    crop_px_to_image_px,
    image_px_to_crop_px,
    image_px_to_model_box,
    image_px_to_pdf_points,
    image_px_to_view_px,
    model_box_to_image_px,
    model_box_to_pdf_points,
    union_box,
    view_placement,
    view_px_to_image_px,
)
from rtprune.deepseek.grounding import MODEL_MAX, parse_grounding
from rtprune.deepseek.v1_preprocess import MODES, crops, global_view, mode_spec

# Pages within 999 px, so one model unit is at most one pixel; portrait, landscape, square, extreme.
SIZES = [(600, 849), (999, 707), (480, 999), (800, 800), (999, 250), (300, 420)]
# Boxes as fractions of the page: a heading, a figure, a box touching the corners, a thin line.
FRACTIONS = [(0.1, 0.05, 0.6, 0.1), (0.25, 0.3, 0.9, 0.7), (0.0, 0.0, 1.0, 1.0), (0.05, 0.5, 0.95, 0.505)]


def _page_box(w: int, h: int, f: tuple[float, ...]) -> tuple[int, int, int, int]:
    return (round(f[0] * w), round(f[1] * h), round(f[2] * w), round(f[3] * h))


def _normalise_in_view(view_box, placement) -> tuple[int, ...]:
    """What the model writes for a box it sees at view_box: 0-999 over the page's content in the view."""
    cx, cy, cw, ch = placement.content
    x0, y0, x1, y1 = view_box
    return tuple(
        round(v * MODEL_MAX) for v in ((x0 - cx) / cw, (y0 - cy) / ch, (x1 - cx) / cw, (y1 - cy) / ch)
    )


def _close(a, b, tolerance: float) -> bool:
    return all(abs(u - v) <= tolerance for u, v in zip(a, b, strict=True))


CASES = list(itertools.product(sorted(MODES), SIZES, FRACTIONS))


@pytest.mark.parametrize(("mode", "size", "fraction"), CASES)
def test_a_box_seen_through_the_global_view_maps_back_within_a_pixel(mode, size, fraction):
    w, h = size
    box = _page_box(w, h, fraction)
    placement = view_placement(w, h, mode)
    seen = image_px_to_view_px(box, w, h, mode)
    assert all(0 <= v <= placement.view_px for v in seen)
    model = _normalise_in_view(seen, placement)
    assert _close(model_box_to_image_px(model, w, h), box, 1.0)
    assert _close(view_px_to_image_px(seen, w, h, mode), box, 1e-6)


@pytest.mark.parametrize(("size", "fraction"), list(itertools.product(SIZES, FRACTIONS)))
def test_a_box_seen_through_the_gundam_crops_maps_back_within_a_pixel(size, fraction):
    w, h = size
    box = _page_box(w, h, fraction)
    parts = image_px_to_crop_px(box, w, h, "gundam")
    columns, rows = view_placement(w, h, "gundam").grid
    assert (len(parts) > 0) == (columns * rows > 1)
    if not parts:
        return
    pieces = tuple(crop_px_to_image_px(i, part, w, h, "gundam") for i, part in parts)
    rebuilt = union_box(pieces)
    model = image_px_to_model_box(rebuilt, w, h)
    assert _close(model_box_to_image_px(model, w, h), box, 1.0)


def test_gundam_pages_of_these_sizes_do_get_crops():
    grids = {size: view_placement(*size, "gundam").grid for size in [(999, 707), (800, 800), (999, 250)]}
    assert all(c * r > 1 for c, r in grids.values()), grids


def _dark_box(image: Image.Image) -> tuple[int, int, int, int]:
    """Bounding box (continuous, exclusive right/bottom) of the pixels darker than mid-grey."""
    dark = np.asarray(image.convert("L")) < 64
    ys, xs = np.nonzero(dark)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _page_with_box(w: int, h: int, box) -> Image.Image:
    page = Image.new("RGB", (w, h), "white")
    ImageDraw.Draw(page).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill="black")
    return page


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("size", [(1240, 1754), (1754, 1240), (640, 905)])
def test_the_real_preprocessing_puts_the_box_where_the_geometry_says(mode, size):
    """Pixels, not arithmetic: draw a box, run v1's own global view, find the box in it."""
    w, h = size
    box = _page_box(w, h, (0.2, 0.3, 0.7, 0.45))
    view = global_view(_page_with_box(w, h, box), mode_spec(mode))
    found = _dark_box(view)
    placement = view_placement(w, h, mode)
    assert _close(found, image_px_to_view_px(box, w, h, mode), 1.0)
    back = model_box_to_image_px(_normalise_in_view(found, placement), w, h)
    page_px_per_view_px = max(w / placement.content[2], h / placement.content[3])
    assert _close(back, box, page_px_per_view_px + 1.0)


def test_the_real_gundam_crops_put_the_box_where_the_geometry_says():
    w, h = 1240, 1754
    box = _page_box(w, h, (0.2, 0.3, 0.7, 0.45))
    grid = view_placement(w, h, "gundam").grid
    tiles = crops(_page_with_box(w, h, box), grid)
    expected = dict(image_px_to_crop_px(box, w, h, "gundam"))
    found = {}
    for index, tile in enumerate(tiles):
        if (np.asarray(tile.convert("L")) < 64).any():
            found[index] = _dark_box(tile)
    assert sorted(found) == sorted(expected)
    for index, part in found.items():
        assert _close(part, expected[index], 1.0)
    rebuilt = union_box(tuple(crop_px_to_image_px(i, p, w, h, "gundam") for i, p in found.items()))
    assert _close(rebuilt, box, w / (640 * grid[0]) + 1.0)


def test_real_v1_boxes_cover_the_page_not_the_padded_square():
    """Evidence for the frame: the stored Gundam output (a 1170 x 1654 page, padded to a square in the global
    view) has boxes reaching x = 65 and x = 916. In the padded frame the page would span only x = 146..853."""
    text = (Path(__file__).resolve().parents[1] / "data" / "grounding" / "v1_gundam_manual.txt").read_text()
    page = parse_grounding(text)
    xs = [v for b in page.blocks for box in b.boxes for v in (box[0], box[2])]
    cx, _, cw, _ = view_placement(1170, 1654, "gundam").content
    band = (cx / 1024 * MODEL_MAX, (cx + cw) / 1024 * MODEL_MAX)
    assert band[0] > 140 and band[1] < 860
    assert min(xs) < band[0] and max(xs) > band[1]


def test_model_boxes_map_to_pdf_points_through_pixels_or_directly():
    w, h, page_w, page_h = 1240, 1754, 595.0, 842.0
    model = (100, 200, 500, 260)
    via_pixels = image_px_to_pdf_points(model_box_to_image_px(model, w, h), w, h, page_w, page_h)
    direct = model_box_to_pdf_points(model, page_w, page_h)
    assert _close(via_pixels, direct, 1e-9)
    assert _close(direct, (100 / 999 * 595, 200 / 999 * 842, 500 / 999 * 595, 260 / 999 * 842), 1e-9)
    assert model_box_to_pdf_points((0, 0, 999, 999), page_w, page_h) == (0.0, 0.0, page_w, page_h)


coordinate = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**12), 10**12)
side = st.integers(min_value=1, max_value=20_000)


@settings(max_examples=300, deadline=None)
@given(st.tuples(coordinate, coordinate, coordinate, coordinate), side, side)
def test_any_box_maps_inside_the_page(box, w, h):
    x0, y0, x1, y1 = model_box_to_image_px(box, w, h)
    assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h
    p0, q0, p1, q1 = image_px_to_pdf_points((x0, y0, x1, y1), w, h, 595.0, 842.0)
    assert 0 <= p0 <= p1 <= 595.0 and 0 <= q0 <= q1 <= 842.0
    m = image_px_to_model_box(box, w, h)
    assert 0 <= m[0] <= m[2] <= MODEL_MAX and 0 <= m[1] <= m[3] <= MODEL_MAX


@settings(max_examples=100, deadline=None)
@given(st.text(), side, side)
def test_every_parsed_box_maps_inside_the_page(text, w, h):
    for block in parse_grounding(text).blocks:
        for box in block.boxes:
            x0, y0, x1, y1 = model_box_to_image_px(box, w, h)
            assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h


def test_crop_box_clamps_and_never_returns_an_empty_image():
    image = Image.new("RGB", (200, 100), "white")
    assert crop_box(image, (10.2, 20.7, 50.1, 40.0)).size == (41, 20)  # outward to whole pixels
    assert crop_box(image, (-50, -50, 500, 500)).size == (200, 100)
    assert crop_box(image, (300, 300, 400, 400)).size == (1, 1)
    assert crop_box(image, (50, 50, 50, 50)).size == (1, 1)
    assert crop_box(image, (80, 60, 20, 10)).size == (60, 50)  # reversed corners


def test_a_figure_box_crops_the_figure_it_names():
    """End to end: a page with a black figure, the output the model would write for it, the crop."""
    w, h = 1240, 1754
    figure = (310, 526, 868, 790)
    page = _page_with_box(w, h, figure)
    model = image_px_to_model_box(figure, w, h)
    heading = "<|ref|>text<|/ref|><|det|>[[50, 20, 900, 60]]<|/det|>\nCaption\n\n"
    text = f"{heading}<|ref|>image<|/ref|><|det|>[{list(model)}]<|/det|>"
    (block,) = parse_grounding(text).figures()
    crop = crop_box(page, model_box_to_image_px(block.boxes[0], w, h))
    assert _close((0, 0, *crop.size), (0, 0, figure[2] - figure[0], figure[3] - figure[1]), 2 * w / 999 + 1)
    dark = np.asarray(crop.convert("L")) < 64
    assert dark.mean() > 0.97
