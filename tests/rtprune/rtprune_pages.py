"""Synthetic pages for the pruning tests: token features, masks, token boxes and a page image, in code."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Page:
    tokens: torch.Tensor  # (N, D)
    protected: torch.Tensor  # (N,) bool
    padding: torch.Tensor  # (N,) bool
    token_boxes: torch.Tensor  # (N, 4), NaN for protected tokens
    image: torch.Tensor  # (H, W) in [0, 1]


def grid_page(rows: int, cols: int, dim: int, seed: int = 0, pad_cols: int = 0, cell_px: int = 8) -> Page:
    """A v1-like layout: rows x cols feature tokens, each row followed by a protected newline token.

    The right `pad_cols` columns are padding: near-identical tokens over a blank image area; content cells
    get random features and random ink.
    """
    gen = torch.Generator().manual_seed(seed)
    n = rows * (cols + 1)
    tokens = torch.randn(n, dim, generator=gen)
    protected = torch.zeros(n, dtype=torch.bool)
    padding = torch.zeros(n, dtype=torch.bool)
    boxes = torch.full((n, 4), float("nan"))
    image = torch.ones(rows * cell_px, cols * cell_px)
    pad_vec = torch.randn(dim, generator=gen)
    for r in range(rows):
        for c in range(cols + 1):
            i = r * (cols + 1) + c
            if c == cols:
                protected[i] = True
                continue
            boxes[i] = torch.tensor([c * cell_px, r * cell_px, (c + 1) * cell_px, (r + 1) * cell_px])
            if c >= cols - pad_cols:
                padding[i] = True
                tokens[i] = pad_vec + 1e-6 * torch.randn(dim, generator=gen)
            else:
                y, x = r * cell_px + 2, c * cell_px + 1
                image[y : y + 3, x : x + cell_px - 2] = 0.0
    return Page(tokens, protected, padding, boxes, image)
