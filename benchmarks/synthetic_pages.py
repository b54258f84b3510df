"""Synthetic DeepSeek-OCR pages for the pruning benchmark and the dynamic-ratio calibration.

A page is rendered with Pillow (random words in the default FreeType font, one or two columns, headings,
some ruled tables, blank regions), laid out as v1 Large sees it: the page keeps its aspect ratio inside a
1280 x 1280 square padded with grey 127. Token features come from a fixed toy encoder, not from
DeepSeek-OCR: each 64 px cell is average-pooled to 8 x 8, mapped by a fixed random linear map to D and
added to a shared offset, plus a little noise. What it preserves is what the ratio reads: identical cells
(padding, blank paper) give near-identical tokens, different ink gives different tokens.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

SIDE_PX, CELL_PX, PAD_GREY = 1280, 64, 127
GRID = SIDE_PX // CELL_PX  # 20 tokens per row in Large mode
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "data",
    "model",
    "page",
    "table",
    "figure",
    "result",
]


@dataclass
class SyntheticPage:
    """tokens (N, D); protected, padding (N,) bool; token_boxes (N, 4); image (S, S) in [0, 1]."""

    tokens: torch.Tensor
    protected: torch.Tensor
    padding: torch.Tensor
    token_boxes: torch.Tensor
    image: torch.Tensor


def render_text_page(seed: int, aspect: float = 0.707, fill: float = 1.0) -> np.ndarray:
    """A grey-padded square page (S, S) uint8 with random text; fill in (0, 1] scales how much is written."""
    rng = random.Random(seed)
    width = round(SIDE_PX * min(1.0, aspect))
    height = round(SIDE_PX * min(1.0, 1.0 / aspect))
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    columns = rng.choice([1, 1, 2])
    margin = rng.randint(50, 110)
    col_w = (width - 2 * margin) // columns
    for col in range(columns):
        y = margin + rng.randint(0, 40)
        bottom = margin + (height - 2 * margin) * fill
        while y < bottom:
            y = _draw_block(draw, rng, margin + col * col_w, y, col_w - 20, bottom)
    canvas = Image.new("L", (SIDE_PX, SIDE_PX), PAD_GREY)
    canvas.paste(page, ((SIDE_PX - width) // 2, (SIDE_PX - height) // 2))
    return np.asarray(canvas)


def _draw_block(
    draw: ImageDraw.ImageDraw, rng: random.Random, x0: int, y: float, width: int, bottom: float
) -> float:
    """One heading, paragraph, table or gap starting at y; returns the next y."""
    kind = rng.choices(["paragraph", "heading", "table", "gap"], [6, 1, 1, 1])[0]
    if kind == "gap":
        return y + rng.randint(40, 200)
    size = rng.randint(26, 34) if kind == "heading" else rng.randint(13, 20)
    font = ImageFont.load_default(size=size)
    lines = 1 if kind == "heading" else rng.randint(2, 12)
    for _ in range(lines):
        if y + size > bottom:
            break
        if kind == "table":
            draw.line([(x0, y), (x0 + width, y)], fill=0, width=1)
            for c in range(4):
                draw.text((x0 + 5 + c * width // 4, y + 3), rng.choice(WORDS), fill=0, font=font)
        else:
            text = " ".join(rng.choice(WORDS) for _ in range(40))
            while draw.textlength(text, font=font) > width and " " in text:
                text = text.rsplit(" ", 1)[0]
            draw.text((x0, y), text, fill=rng.randint(0, 60), font=font)
        y += size * 1.45
    return y + size


def large_layout() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """v1 Large token layout: 20 rows of 20 cells each followed by a newline, then a view separator.
    -> protected (421,) bool, token_boxes (421, 4) with NaN for newline/separator, cell index (421,) long
    (-1 for tokens without a cell)."""
    n = GRID * (GRID + 1) + 1
    protected = torch.zeros(n, dtype=torch.bool)
    boxes = torch.full((n, 4), float("nan"))
    cell = torch.full((n,), -1, dtype=torch.long)
    for r in range(GRID):
        for c in range(GRID + 1):
            i = r * (GRID + 1) + c
            if c == GRID:
                protected[i] = True
                continue
            boxes[i] = torch.tensor([c * CELL_PX, r * CELL_PX, (c + 1) * CELL_PX, (r + 1) * CELL_PX])
            cell[i] = r * GRID + c
    protected[-1] = True
    return protected, boxes, cell


def toy_features(image: np.ndarray, dim: int = 1280, seed: int = 0, noise: float = 0.02) -> torch.Tensor:
    """Toy encoder: (S, S) uint8 -> (GRID * GRID, dim) fp32 cell features (see module docstring)."""
    gen = torch.Generator().manual_seed(1234)  # the encoder's weights are fixed across pages
    proj = torch.randn(64, dim, generator=gen) / 8.0
    offset = torch.randn(dim, generator=gen) * 0.2  # a shared component, as post-projector tokens have
    x = torch.from_numpy(image.astype(np.float32) / 255.0)
    pooled = torch.nn.functional.avg_pool2d(x[None, None], CELL_PX // 8)[0, 0]  # (160, 160)
    cells = pooled.reshape(GRID, 8, GRID, 8).permute(0, 2, 1, 3).reshape(GRID * GRID, 64)
    page_gen = torch.Generator().manual_seed(seed)
    return (cells - 0.5) @ proj + offset + noise * torch.randn(GRID * GRID, dim, generator=page_gen)


def text_page(seed: int, dim: int = 1280, aspect: float = 0.707, fill: float = 1.0) -> SyntheticPage:
    """A full synthetic v1-Large page: rendered text, layout, padding mask and toy-encoder tokens."""
    image = render_text_page(seed, aspect, fill)
    protected, boxes, cell = large_layout()
    feats = toy_features(image, dim, seed)
    tokens = torch.zeros(protected.numel(), dim)
    tokens[cell >= 0] = feats[cell[cell >= 0]]
    newline_gen = torch.Generator().manual_seed(99)
    tokens[protected] = torch.randn(dim, generator=newline_gen)
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2
    width = round(SIDE_PX * min(1.0, aspect))
    height = round(SIDE_PX * min(1.0, 1.0 / aspect))
    x0, y0 = (SIDE_PX - width) / 2, (SIDE_PX - height) / 2
    padding = (centre_x < x0) | (centre_x > x0 + width) | (centre_y < y0) | (centre_y > y0 + height)
    padding &= ~protected
    return SyntheticPage(tokens, protected, padding, boxes, torch.from_numpy(image.astype(np.float32) / 255))


def v2_page(seed: int, dim: int = 1280, tiles: int = 6) -> SyntheticPage:
    """A DeepSeek-OCR-2-like page: 144 query tokens per tile + 256 global + 1 separator, no spatial
    cells (all boxes NaN). Features: toy-encoder features of a rendered page, resampled to the count."""
    base = text_page(seed, dim)
    n = 144 * tiles + 256 + 1
    feats = base.tokens[~base.protected]
    pick = torch.linspace(0, feats.shape[0] - 1, n - 1).round().long()
    gen = torch.Generator().manual_seed(seed + 7)
    tokens = torch.cat([feats[pick] + 0.05 * torch.randn(n - 1, dim, generator=gen), base.tokens[-1:]])
    protected = torch.zeros(n, dtype=torch.bool)
    protected[-1] = True
    boxes = torch.full((n, 4), float("nan"))
    return SyntheticPage(tokens, protected, torch.zeros(n, dtype=torch.bool), boxes, base.image)
