"""DeepSeek-OCR v1's own page preprocessing and visual-token layout, in PIL/numpy (no torchvision).

Rules, as in the original v1 inference code:
  - Tiny (512) and Small (640) stretch the page to the square (v1 "directly resize": aspect NOT kept, so
    no token is padding); Base (1024) and Large (1280) keep the aspect ratio and pad to the square with
    ImageOps.pad in the mean colour (127, 127, 127), centred.
  - Gundam: the 1024 global view is padded like Base; a page with a side over 640 px is also stretched to
    (640 w, 640 h) and cut into w x h crops, row-major, where (w, h) is v1's dynamic_preprocess choice among
    grids of 2..9 crops. A page within 640 x 640 gets no crops.
  - Pixels: ToTensor then Normalize(mean 0.5, std 0.5), i.e. x / 127.5 - 1.
  - Each view of S px gives an (S/64) x (S/64) feature grid (16 px patches, 4x compressor).

Token order (what UnlimitedOcrModel.get_image_features scatters into the placeholders):
  [crops stitched into one grid of 10h rows x 10w features, each row + newline]
  [global grid of g rows x g features, each row + newline] [view separator]

`image_gray` is the global view exactly as the encoder sees it: S x S, after resize AND padding.

Small and thin pages (this project's rule, not the original code's; both engines read every page through
it): a page is first fitted (fit_page) so that no side is under MIN_SIDE_PX, one 16 px encoder patch (the
page is scaled up, aspect kept: every mode resizes it to at least 512 px anyway, so the model sees the same
content), and it is no longer than MAX_ASPECT:1 (its short side is padded in the pad colour, centred, so its
content fills at least one token row of a Large view; a strip longer than MAX_READ_PX is scaled down to it
first, which no mode reads beyond). Every function below that takes a page or its size applies the rule,
so token counts, layouts and views always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from rtprune.deepseek.layout import TokenLayout

PX_PER_TOKEN = 64  # 16 px SAM patches, then the 4x (16x area) conv compressor
PAD_RGB = (127, 127, 127)  # v1 pads with int(mean * 255) for mean 0.5
CROP_PX, MIN_CROPS, MAX_CROPS = 640, 2, 9
MIN_SIDE_PX = 16  # one encoder patch
# Longer strips keep under one token row of a Large (1280 px, 20 x 20) view's content.
MAX_ASPECT = 20
MAX_READ_PX = CROP_PX * MAX_CROPS  # the longest side any mode reads (Gundam's 9 x 1 crops: 5760 px)


@dataclass(frozen=True)
class ModeSpec:
    size_px: int  # global view side S
    keep_aspect: bool  # pad to the square (True) or stretch (False)
    crops: bool  # Gundam: add 640 px crops


MODES: dict[str, ModeSpec] = {
    "tiny": ModeSpec(512, keep_aspect=False, crops=False),
    "small": ModeSpec(640, keep_aspect=False, crops=False),
    "base": ModeSpec(1024, keep_aspect=True, crops=False),
    "large": ModeSpec(1280, keep_aspect=True, crops=False),
    "gundam": ModeSpec(1024, keep_aspect=True, crops=True),
}


def mode_spec(mode: str) -> ModeSpec:
    if mode not in MODES:
        raise ValueError(f"unknown v1 mode {mode!r}; choose one of {sorted(MODES)}")
    return MODES[mode]


def _strip_size(width_px: int, height_px: int) -> tuple[int, int]:
    """A strip longer than MAX_ASPECT:1 -> its long side (at most MAX_READ_PX) and a short side padded to
    MAX_ASPECT:1; any other size as it is."""
    long_px, short_px = max(width_px, height_px), min(width_px, height_px)
    if long_px <= MAX_ASPECT * short_px:
        return width_px, height_px
    long_px = min(long_px, MAX_READ_PX)
    short_px = math.ceil(long_px / MAX_ASPECT)
    return (long_px, short_px) if width_px >= height_px else (short_px, long_px)


def fitted_size(width_px: int, height_px: int) -> tuple[int, int]:
    """The size a page of this size is read at (the module's small and thin page rule)."""
    if width_px < 1 or height_px < 1:
        raise ValueError(f"page of {width_px} x {height_px} px has no pixels")
    width_px, height_px = _strip_size(width_px, height_px)
    short_px = min(width_px, height_px)
    if short_px >= MIN_SIDE_PX:
        return width_px, height_px
    scale = MIN_SIDE_PX / short_px
    return max(MIN_SIDE_PX, round(width_px * scale)), max(MIN_SIDE_PX, round(height_px * scale))


def fit_page(image: Image.Image) -> Image.Image:
    """The page as it is read: padded to MAX_ASPECT:1 if longer (scaled down to MAX_READ_PX first), scaled
    up to MIN_SIDE_PX if smaller; any other page is returned as it is (the same object)."""
    target = fitted_size(image.width, image.height)
    if target == image.size:
        return image
    strip = _strip_size(image.width, image.height)
    if strip != image.size:
        scale = max(strip) / max(image.size)
        content = image.convert("RGB").resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        )
        image = ImageOps.pad(content, strip, color=PAD_RGB)
    return image if image.size == target else image.resize(target)


def candidate_grids(min_crops: int, max_crops: int) -> list[tuple[int, int]]:
    # Same construction and order as v1 (ties on aspect difference are broken by this order).
    grids = {
        (i, j)
        for n in range(min_crops, max_crops + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_crops <= i * j <= max_crops
    }
    return sorted(grids, key=lambda g: g[0] * g[1])


def crop_grid(width_px: int, height_px: int, crop_px: int = CROP_PX) -> tuple[int, int]:
    """v1's Gundam crop grid (w columns, h rows); (1, 1) means no crops (page within crop_px x crop_px)."""
    if width_px <= crop_px and height_px <= crop_px:
        return (1, 1)
    aspect, area = width_px / height_px, width_px * height_px
    best, best_diff = (1, 1), float("inf")
    for grid in candidate_grids(MIN_CROPS, MAX_CROPS):
        diff = abs(aspect - grid[0] / grid[1])
        if diff < best_diff:
            best, best_diff = grid, diff
        elif diff == best_diff and area > 0.5 * crop_px * crop_px * grid[0] * grid[1]:
            best = grid  # same aspect: the larger grid when the page has the pixels for it
    return best


def content_box(width_px: int, height_px: int, spec: ModeSpec) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) of the page inside the S x S global view (ImageOps.pad's arithmetic)."""
    width_px, height_px = fitted_size(width_px, height_px)
    s = spec.size_px
    if not spec.keep_aspect or width_px == height_px:
        return (0, 0, s, s)
    if width_px > height_px:
        h = round(height_px / width_px * s)
        return (0, round((s - h) * 0.5), s, h)
    w = round(width_px / height_px * s)
    return (round((s - w) * 0.5), 0, w, s)


def page_grid(width_px: int, height_px: int, spec: ModeSpec) -> tuple[int, int]:
    """The crop grid this mode uses for a page: (1, 1) without crops."""
    return crop_grid(*fitted_size(width_px, height_px)) if spec.crops else (1, 1)


def count_tokens(width_px: int, height_px: int, spec: ModeSpec) -> int:
    """N = g (g + 1) + 1 for the global view, plus (10 w + 1) 10 h for a w x h crop grid."""
    g = spec.size_px // PX_PER_TOKEN
    n = g * (g + 1) + 1
    w, h = page_grid(width_px, height_px, spec)
    if w * h > 1:
        q = CROP_PX // PX_PER_TOKEN
        n += (q * w + 1) * (q * h)
    return n


def to_pixels(view: Image.Image) -> torch.Tensor:
    """PIL RGB (S, S) -> (3, S, S) float32 normalised with mean 0.5, std 0.5."""
    arr = np.asarray(view, dtype=np.float32) / 255.0
    return torch.from_numpy((arr - 0.5) / 0.5).permute(2, 0, 1).contiguous()


def global_view(image: Image.Image, spec: ModeSpec) -> Image.Image:
    """The S x S global view: stretched (Tiny, Small) or aspect kept and padded (Base, Large, Gundam)."""
    image = fit_page(image)
    s = spec.size_px
    if not spec.keep_aspect:
        return image.resize((s, s))
    return ImageOps.pad(image, (s, s), color=PAD_RGB)


def crops(image: Image.Image, grid: tuple[int, int]) -> list[Image.Image]:
    """The page stretched to (640 w, 640 h) and cut into w x h crops, row-major."""
    w, h = grid
    resized = image.resize((CROP_PX * w, CROP_PX * h))
    return [
        resized.crop((c * CROP_PX, r * CROP_PX, (c + 1) * CROP_PX, (r + 1) * CROP_PX))
        for r in range(h)
        for c in range(w)
    ]


def _grid_rows(rows: int, cols: int, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (rows * (cols + 1), 4) for a grid with a newline after each row, and its newline mask.

    cell: (rows, cols, 4) boxes of the feature cells.
    """
    nan = torch.full((rows, 1, 4), float("nan"), dtype=torch.float32)
    boxes = torch.cat([cell, nan], dim=1).reshape(-1, 4)
    newline = torch.zeros(rows, cols + 1, dtype=torch.bool)
    newline[:, -1] = True
    return boxes, newline.reshape(-1)


def _cells(rows: int, cols: int, x0: float, y0: float, w: float, h: float) -> torch.Tensor:
    """(rows, cols, 4) boxes splitting the rectangle (x0, y0, w, h) evenly."""
    xs = x0 + torch.arange(cols + 1, dtype=torch.float64) * (w / cols)
    ys = y0 + torch.arange(rows + 1, dtype=torch.float64) * (h / rows)
    ex0, ey0 = xs[:-1].expand(rows, cols), ys[:-1, None].expand(rows, cols)
    ex1, ey1 = xs[1:].expand(rows, cols), ys[1:, None].expand(rows, cols)
    return torch.stack([ex0, ey0, ex1, ey1], dim=-1).float()


def token_layout(width_px: int, height_px: int, spec: ModeSpec) -> TokenLayout:
    """The page's TokenLayout; boxes are in `image_gray` pixels (the S x S padded global view).

    Crop tokens map to their share of the page's content box (crops cover the whole page, no padding).
    A global token is padding when its cell centre lies outside the content box, so about
    int(g * min(w, h) / max(w, h)) of g columns (or rows) hold page content.
    """
    g, s = spec.size_px // PX_PER_TOKEN, spec.size_px
    x0, y0, cw, ch = content_box(width_px, height_px, spec)
    parts_boxes, parts_newline = [], []
    cw_crops, ch_crops = page_grid(width_px, height_px, spec)
    if cw_crops * ch_crops > 1:
        q = CROP_PX // PX_PER_TOKEN
        local = _cells(q * ch_crops, q * cw_crops, x0, y0, cw, ch)
        boxes, newline = _grid_rows(q * ch_crops, q * cw_crops, local)
        parts_boxes.append(boxes)
        parts_newline.append(newline)
    n_local = sum(len(b) for b in parts_boxes)
    glob = _cells(g, g, 0.0, 0.0, s, s)
    boxes, newline = _grid_rows(g, g, glob)
    parts_boxes += [boxes, torch.full((1, 4), float("nan"))]
    parts_newline += [newline, torch.zeros(1, dtype=torch.bool)]
    all_boxes, all_newline = torch.cat(parts_boxes), torch.cat(parts_newline)
    separator = torch.zeros_like(all_newline)
    separator[-1] = True
    padding = torch.zeros_like(all_newline)
    centre_x = (glob[..., 0] + glob[..., 2]) / 2
    centre_y = (glob[..., 1] + glob[..., 3]) / 2
    outside = (centre_x < x0) | (centre_x > x0 + cw) | (centre_y < y0) | (centre_y > y0 + ch)
    padding[n_local : n_local + g * (g + 1)] = torch.cat(
        [outside, torch.zeros(g, 1, dtype=torch.bool)], 1
    ).reshape(-1)
    return TokenLayout(
        n_tokens=len(all_newline),
        protected=all_newline | separator,
        newline=all_newline,
        padding=padding,
        token_boxes=all_boxes,
    )


def prepare_views(image: Image.Image, spec: ModeSpec) -> tuple[dict[str, Any], torch.Tensor]:
    """model_inputs for one page and its image_gray (S, S) in [0, 1].

    model_inputs: pixel_values (1, 3, S, S); with crops also pixel_values_local (w h, 3, 640, 640),
    num_local_patches (w h) and patches_grid [w, h] (width first, as get_image_features expects).
    """
    image = fit_page(image.convert("RGB"))
    view = global_view(image, spec)
    inputs: dict[str, object] = {"pixel_values": to_pixels(view)[None]}
    grid = page_grid(image.width, image.height, spec)
    if grid[0] * grid[1] > 1:
        inputs["pixel_values_local"] = torch.stack([to_pixels(c) for c in crops(image, grid)])
        inputs["num_local_patches"] = grid[0] * grid[1]
        inputs["patches_grid"] = [grid[0], grid[1]]
    gray = torch.from_numpy(np.asarray(view.convert("L"), dtype=np.float32) / 255.0)
    return inputs, gray
