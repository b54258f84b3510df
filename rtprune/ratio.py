"""Dynamic retention: how many of a page's prunable tokens to keep, from its content.

The paper drives its ratio by post-encoding inter-token similarity and the image's textual density but
does not publish how they are combined. The formula below is OURS:

    R = mean over pairs i != j of cos(x_i, x_j)^2        (redundancy of the prunable tokens, in [0, 1])
    T = fraction of image cells holding text             (a cell holds text when the fraction of its
                                                          pixels with gradient > edge_threshold reaches
                                                          cell_text_threshold)
    r = clip(retention + density_weight * (T - density_ref)
                       - redundancy_weight * (R - redundancy_ref), min_retention, max_retention)

Dense text needs its tokens (r rises with T); near-duplicate tokens (padding, blank margins) can go
(r falls with R). density_ref and redundancy_ref are the means of T and R over synthetic text pages
(benchmarks/calibrate_ratio.py), so a typical text page gets `retention` (0.84 by default).

Cells are the token boxes where given (one cell per token with a spatial cell); otherwise, or when every
box is NaN (DeepSeek-OCR-2 query tokens), a density_grid x density_grid grid over the whole image.
Edge fractions use an integral image over 8 x 8 pixel blocks (box sides snap to 8 px; v1 cells are 64 px).
R is estimated against a strided subset of `redundancy_anchors` tokens: O(anchors * N * D) instead of
O(N^2 * D), exact when N <= anchors.
"""

from __future__ import annotations

import torch

from rtprune.config import PruneConfig

_BLOCK_PX = 8  # box sides snap to 8 px: v1 token cells are 64 px (16 px patches x 4), so exact there


def redundancy(tokens: torch.Tensor, anchors: int = 64) -> float:
    """Mean squared off-diagonal cosine. tokens (n, D) any float -> float in [0, 1]; 0 when n < 2."""
    n = tokens.shape[0]
    if n < 2:
        return 0.0
    x = torch.nn.functional.normalize(torch.nan_to_num(tokens.float()), dim=-1, eps=1e-12)
    idx = torch.linspace(0, n - 1, min(anchors, n), device=x.device).round().long().unique()
    sim_sq = (x[idx] @ x.T).square()
    self_sq = sim_sq[torch.arange(idx.numel(), device=x.device), idx].sum()
    value = (sim_sq.sum() - self_sq) / (idx.numel() * (n - 1))
    return float(value.clamp(0.0, 1.0))


def strong_edges(image: torch.Tensor, threshold: float) -> torch.Tensor:
    """image (H, W) float in [0, 1] -> (H, W) bool: max(|dI/dx|, |dI/dy|) > threshold (forward
    differences; the last row/column compares with itself and is never an edge)."""
    img = image.float()
    grad = torch.zeros_like(img)
    grad[:, :-1] = torch.diff(img, dim=1).abs_()
    torch.maximum(grad[:-1], torch.diff(img, dim=0).abs_(), out=grad[:-1])  # in place: 1.6 Mpx pages
    return grad > threshold


def box_fractions(edges: torch.Tensor, boxes: torch.Tensor, block: int = 1) -> torch.Tensor:
    """Strong-edge fraction inside each box via an integral image over block x block pixel blocks.

    edges (H, W) bool, boxes (C, 4) float (x0, y0, x1, y1) pixels, NaN rows allowed -> (C,) float64,
    NaN for NaN or empty boxes. Box sides snap to the nearest block boundary: block = 1 is exact; larger
    blocks trade a few pixels at the box sides for one cheap reduction instead of a full-size cumsum
    (a 1280 x 1280 cumsum costs ~10 ms on one CPU core, the 8 px block sum well under 1 ms).
    """
    h, w = edges.shape
    hb, wb = -(-h // block), -(-w // block)
    grid = edges.to(torch.float32)
    if hb * block != h or wb * block != w:
        grid = torch.nn.functional.pad(grid, (0, wb * block - w, 0, hb * block - h))
    # avg_pool is the fastest block sum on CPU; counts <= block^2 and a power-of-two area keep it exact
    counts = torch.nn.functional.avg_pool2d(grid[None, None], block)[0, 0].double() * (block * block)
    integral = torch.zeros(hb + 1, wb + 1, dtype=torch.float64, device=edges.device)
    integral[1:, 1:] = counts.cumsum(0).cumsum(1)
    b = boxes.to(device=edges.device, dtype=torch.float64)
    ok = ~torch.isnan(b).any(dim=1)
    b = torch.nan_to_num(b)
    x0, x1 = _snap(b[:, 0], block, w), _snap(b[:, 2], block, w)
    y0, y1 = _snap(b[:, 1], block, h), _snap(b[:, 3], block, h)
    width_px = (x1 * block).clamp(max=w) - x0 * block
    height_px = (y1 * block).clamp(max=h) - y0 * block
    area = (width_px.clamp_min(0) * height_px.clamp_min(0)).double()
    total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    frac = total / area.clamp_min(1.0)
    return torch.where(ok & (area > 0), frac, torch.full_like(frac, float("nan")))


def _snap(coord: torch.Tensor, block: int, size: int) -> torch.Tensor:
    """Pixel coordinate -> block boundary index; the image's far edge maps to the last (partial) block."""
    nblocks = -(-size // block)
    snapped = torch.floor(coord / block + 0.5).clamp(0, nblocks).long()
    return torch.where(coord >= size, torch.full_like(snapped, nblocks), snapped)


def grid_boxes(height: int, width: int, cells: int) -> torch.Tensor:
    """A cells x cells grid over an image -> (cells^2, 4) float boxes, row-major."""
    ys = torch.linspace(0, height, cells + 1, dtype=torch.float64)
    xs = torch.linspace(0, width, cells + 1, dtype=torch.float64)
    y0, x0 = torch.meshgrid(ys[:-1], xs[:-1], indexing="ij")
    y1, x1 = torch.meshgrid(ys[1:], xs[1:], indexing="ij")
    return torch.stack([x0, y0, x1, y1], dim=-1).reshape(-1, 4)


def text_density(image: torch.Tensor, config: PruneConfig, token_boxes: torch.Tensor | None = None) -> float:
    """Fraction of cells holding text. image (H, W) float in [0, 1]; token_boxes (N, 4) or None."""
    if image.ndim != 2:
        raise ValueError(f"image must be (H, W) grayscale, got shape {tuple(image.shape)}")
    edges = strong_edges(image, config.edge_threshold)
    frac = box_fractions(edges, token_boxes, _BLOCK_PX) if token_boxes is not None else None
    if frac is None or bool(torch.isnan(frac).all()):
        grid = grid_boxes(image.shape[0], image.shape[1], config.density_grid)
        frac = box_fractions(edges, grid, _BLOCK_PX)
    frac = frac[~torch.isnan(frac)]
    if frac.numel() == 0:
        return 0.0
    return float((frac >= config.cell_text_threshold).double().mean())


def dynamic_retention(config: PruneConfig, redundancy_value: float, density_value: float | None) -> float:
    """Our formula (module docstring); a missing density counts as density_ref (no evidence either way)."""
    density = config.density_ref if density_value is None else density_value
    r = (
        config.retention
        + config.density_weight * (density - config.density_ref)
        - config.redundancy_weight * (redundancy_value - config.redundancy_ref)
    )
    return min(config.max_retention, max(config.min_retention, r))
