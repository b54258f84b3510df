"""Stage 1 of RTPrune: keep the prunable tokens with the highest L2 norm.

Norms are computed in fp32 whatever the input dtype (bf16 norms of near-equal padding tokens collide).
Tie-break, documented and deterministic: norms are quantised to multiples of `tie_tol * max_norm` of the
page, ranked by that quantised value (descending), and equal values go to the lower token index. Padding
cells have near-identical embeddings, so without the quantisation their order would follow numeric noise
that differs between devices and dtypes; with it, the earlier cells win, the same on every device.
"""

from __future__ import annotations

import torch


def default_budget(n_prunable: int, retention: float) -> int:
    """Prunable tokens to keep: clamp(round(retention * n_prunable), 1, n_prunable); 0 if none exist."""
    if n_prunable <= 0:
        return 0
    return min(n_prunable, max(1, round(retention * n_prunable)))


def norm_keys(tokens: torch.Tensor, prunable: torch.Tensor, tie_tol: float) -> torch.Tensor:
    """Quantised fp32 norms used for ranking; non-prunable positions get -1 (they rank last).

    tokens (B, N, D) any float dtype, prunable (B, N) bool -> (B, N) float32.
    """
    norms = torch.linalg.vector_norm(tokens.float(), dim=-1)
    norms = torch.nan_to_num(norms, nan=0.0, posinf=0.0)
    scale = norms.masked_fill(~prunable, 0.0).amax(dim=-1, keepdim=True)
    step = (scale * tie_tol).clamp_min(torch.finfo(torch.float32).tiny)
    keys = torch.floor(norms / step + 0.5) if tie_tol > 0 else norms
    return keys.masked_fill(~prunable, -1.0)


def rank_keep(keys: torch.Tensor, prunable: torch.Tensor, budgets: torch.Tensor) -> torch.Tensor:
    """Keep mask of the `budgets[b]` best-ranked prunable tokens of each row.

    keys (B, N) float (higher is better, equal keys -> lower index first), prunable (B, N) bool,
    budgets (B,) long -> (B, N) bool (True = selected; non-prunable positions are False).
    """
    order = torch.sort(keys, dim=-1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    positions = torch.arange(keys.shape[-1], device=keys.device).expand_as(order)
    rank.scatter_(-1, order, positions)
    return (rank < budgets[:, None]) & prunable


def select_by_norm(
    tokens: torch.Tensor, prunable: torch.Tensor, budgets: torch.Tensor, tie_tol: float
) -> torch.Tensor:
    """Stage 1 for a padded batch. tokens (B, N, D), prunable (B, N) bool, budgets (B,) long -> (B, N) bool
    mask of the selected prunable tokens (protected tokens are added by the caller)."""
    return rank_keep(norm_keys(tokens, prunable, tie_tol), prunable, budgets)
