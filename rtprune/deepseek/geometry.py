"""Coordinate frames of a structured page: the model's 0-999 boxes, page-image pixels, PDF points, and
where a page pixel lands in the views v1 feeds the encoder.

Frames (docs/structured_pages.md has the evidence):
  model   integers 0..999 on each axis over the whole page image, x right, y down. Not the padded view:
          DeepSeek's own scripts map `x / 999 * image_width` on the original image in every mode, and real
          outputs on A4 pages (Base/Gundam pad them to a square) hold x values where the padding would be.
  image   pixels of the page image given to the engine (W x H), continuous: (0, 0) is the top-left corner
          of the top-left pixel, (W, H) the bottom-right corner of the last one. Boxes are (x0, y0, x1, y1).
  pdf     points of the page as PyMuPDF renders it (page.rect: origin top-left, y down, /Rotate applied).
  view    pixels of a mode's S x S global view (stretched, or padded around the content box), and of the
          640 px Gundam crops: what the encoder sees. Only needed to relate boxes to visual tokens.

The model -> image map is the same in every mode, so it takes no mode; the view maps do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rtprune.deepseek.grounding import MODEL_MAX
from rtprune.deepseek.v1_preprocess import CROP_PX, content_box, mode_spec, page_grid

if TYPE_CHECKING:
    from PIL import Image

BoxF = tuple[float, float, float, float]


def _ordered_inside(box: BoxF, width: float, height: float) -> BoxF:
    """Clamp to [0, width] x [0, height] and order the corners; NaN counts as 0."""
    x0, y0, x1, y1 = (0.0 if math.isnan(v) else v for v in box)
    x0, x1 = sorted((min(max(x0, 0.0), width), min(max(x1, 0.0), width)))
    y0, y1 = sorted((min(max(y0, 0.0), height), min(max(y1, 0.0), height)))
    return (x0, y0, x1, y1)


def model_box_to_image_px(box: tuple[float, ...], image_w: int, image_h: int) -> BoxF:
    """A 0-999 model box -> image pixels (x / 999 * W, as DeepSeek maps it), clamped inside the image."""
    x0, y0, x1, y1 = box
    sx, sy = image_w / MODEL_MAX, image_h / MODEL_MAX
    return _ordered_inside((x0 * sx, y0 * sy, x1 * sx, y1 * sy), image_w, image_h)


def image_px_to_model_box(box_px: BoxF, image_w: int, image_h: int) -> tuple[int, int, int, int]:
    """Image pixels -> the 0-999 model box that maps back to them (the inverse, rounded to integers)."""
    x0, y0, x1, y1 = _ordered_inside(box_px, image_w, image_h)
    sx, sy = MODEL_MAX / max(image_w, 1), MODEL_MAX / max(image_h, 1)
    return (round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy))


def image_px_to_pdf_points(
    box_px: BoxF, image_w: int, image_h: int, page_width_pt: float, page_height_pt: float
) -> BoxF:
    """Image pixels -> PDF points of the rendered page (PyMuPDF page.rect frame), clamped inside the page.

    The renderer scales both axes by the same zoom, so points = px * page_width_pt / W (and H for y).
    """
    x0, y0, x1, y1 = _ordered_inside(box_px, image_w, image_h)
    sx, sy = page_width_pt / max(image_w, 1), page_height_pt / max(image_h, 1)
    return _ordered_inside((x0 * sx, y0 * sy, x1 * sx, y1 * sy), page_width_pt, page_height_pt)


def model_box_to_pdf_points(box: tuple[float, ...], page_width_pt: float, page_height_pt: float) -> BoxF:
    """A 0-999 model box -> PDF points of the page (no image needed: both frames cover the whole page)."""
    x0, y0, x1, y1 = box
    sx, sy = page_width_pt / MODEL_MAX, page_height_pt / MODEL_MAX
    return _ordered_inside((x0 * sx, y0 * sy, x1 * sx, y1 * sy), page_width_pt, page_height_pt)


def union_box(boxes: tuple[tuple[float, ...], ...]) -> BoxF | None:
    """The smallest box holding all of `boxes` (a ref with several boxes, cropped as one figure)."""
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def crop_box(image: Image.Image, box_px: BoxF) -> Image.Image:
    """The pixels under box_px (outward to whole pixels), clamped inside the image, at least 1 x 1."""
    w, h = image.size
    x0, y0, x1, y1 = _ordered_inside(box_px, w, h)
    left, top = min(math.floor(x0), max(w - 1, 0)), min(math.floor(y0), max(h - 1, 0))
    right, bottom = max(math.ceil(x1), left + 1), max(math.ceil(y1), top + 1)
    return image.crop((left, top, right, bottom))


@dataclass(frozen=True)
class ViewPlacement:
    """Where a W x H page sits in what a v1 mode feeds the encoder.

    view_px: side S of the global view. content: (x0, y0, w, h) of the page inside it (the rest is padding
    in Base, Large and Gundam; the whole view in Tiny and Small, which stretch). grid: Gundam's crop grid
    (columns, rows) of CROP_PX crops over the page stretched to (CROP_PX * columns, CROP_PX * rows); (1, 1)
    means no crops.
    """

    view_px: int
    content: tuple[int, int, int, int]
    grid: tuple[int, int]


def view_placement(image_w: int, image_h: int, mode: str) -> ViewPlacement:
    """The placement v1_preprocess uses for this page size and mode (same rounding as ImageOps.pad)."""
    spec = mode_spec(mode)
    return ViewPlacement(spec.size_px, content_box(image_w, image_h, spec), page_grid(image_w, image_h, spec))


def image_px_to_view_px(box_px: BoxF, image_w: int, image_h: int, mode: str) -> BoxF:
    """Image pixels -> pixels of the mode's global view."""
    place = view_placement(image_w, image_h, mode)
    cx, cy, cw, ch = place.content
    x0, y0, x1, y1 = _ordered_inside(box_px, image_w, image_h)
    sx, sy = cw / image_w, ch / image_h
    return (cx + x0 * sx, cy + y0 * sy, cx + x1 * sx, cy + y1 * sy)


def view_px_to_image_px(box_view: BoxF, image_w: int, image_h: int, mode: str) -> BoxF:
    """Pixels of the mode's global view -> image pixels (padding maps to the nearest page edge)."""
    place = view_placement(image_w, image_h, mode)
    cx, cy, cw, ch = place.content
    x0, y0, x1, y1 = box_view
    sx, sy = image_w / cw, image_h / ch
    return _ordered_inside(((x0 - cx) * sx, (y0 - cy) * sy, (x1 - cx) * sx, (y1 - cy) * sy), image_w, image_h)


def crop_px_to_image_px(crop_index: int, box_crop: BoxF, image_w: int, image_h: int, mode: str) -> BoxF:
    """Pixels of Gundam crop `crop_index` (row-major) -> image pixels."""
    columns, rows = view_placement(image_w, image_h, mode).grid
    if not 0 <= crop_index < columns * rows or columns * rows == 1:
        raise ValueError(f"crop {crop_index} does not exist for a {image_w}x{image_h} page in mode {mode!r}")
    ox, oy = (crop_index % columns) * CROP_PX, (crop_index // columns) * CROP_PX
    sx, sy = image_w / (CROP_PX * columns), image_h / (CROP_PX * rows)
    x0, y0, x1, y1 = box_crop
    return _ordered_inside(((x0 + ox) * sx, (y0 + oy) * sy, (x1 + ox) * sx, (y1 + oy) * sy), image_w, image_h)


def image_px_to_crop_px(box_px: BoxF, image_w: int, image_h: int, mode: str) -> list[tuple[int, BoxF]]:
    """Image pixels -> the Gundam crops the box overlaps, each with the part of the box inside it."""
    columns, rows = view_placement(image_w, image_h, mode).grid
    if columns * rows == 1:
        return []
    x0, y0, x1, y1 = _ordered_inside(box_px, image_w, image_h)
    sx, sy = CROP_PX * columns / image_w, CROP_PX * rows / image_h
    gx0, gy0, gx1, gy1 = x0 * sx, y0 * sy, x1 * sx, y1 * sy  # in the stretched (640 c) x (640 r) image
    found = []
    for index in range(columns * rows):
        ox, oy = (index % columns) * CROP_PX, (index // columns) * CROP_PX
        part = _ordered_inside((gx0 - ox, gy0 - oy, gx1 - ox, gy1 - oy), CROP_PX, CROP_PX)
        if part[2] > part[0] and part[3] > part[1]:
            found.append((index, part))
    return found
