"""Public pruning API: `prune` one page's visual tokens, or `prune_batch` many pages at once.

Budget: the number of prunable (non-protected) tokens kept. Unless given, budget =
clamp(round(r * n_prunable), 1, n_prunable) with r the fixed `retention` or the dynamic ratio
(rtprune/ratio.py). The result keeps n_protected + budget tokens in their original order. A page with
nothing to drop (method "none", budget = n_prunable, no prunable tokens) comes back unchanged: the very
same tensor object, bit for bit.

With `config.count_from_pixels` the budget depends on the page's pixels and size only (`pixel_budget`):
an engine that must fix the kept count before encoding (vLLM) computes it in its front end, then passes it
as `budgets` so the same selection runs on the features.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rtprune.baselines import (
    Selection,
    divprune_select,
    padding_select,
    random_select,
    spatial_select,
    tome_select,
)
from rtprune.config import PruneConfig
from rtprune.method import rtprune_batch
from rtprune.ratio import dynamic_retention, redundancy, text_density
from rtprune.select import default_budget

__all__ = ["PruneConfig", "PruneResult", "pixel_budget", "prune", "prune_batch"]


@dataclass(frozen=True)
class PruneResult:
    """One page after pruning.

    tokens:     (M, D) in the input dtype and device; M = n_protected + budget.
    kept_index: (M,) long, ascending and unique indices into the input; protected tokens always present.
    retention:  the ratio used for the prunable tokens (budget / n_prunable when a budget was given).
    budget:     prunable tokens kept; n_prunable: prunable tokens in the input.
    mass:       (M,) fp32 tokens' worth each kept token stands for (merging methods), else None.
    redundancy, density: the dynamic-ratio inputs when the ratio was dynamic (density None without image).
    """

    tokens: torch.Tensor
    kept_index: torch.Tensor
    retention: float = 1.0
    budget: int = 0
    n_prunable: int = 0
    mass: torch.Tensor | None = None
    redundancy: float | None = None
    density: float | None = None


@dataclass(frozen=True)
class _Plan:
    """Per-page decision before any token is touched."""

    prunable: torch.Tensor
    n_prunable: int
    budget: int
    retention: float
    redundancy: float | None = None
    density: float | None = None


def prune(
    tokens: torch.Tensor,
    config: PruneConfig,
    protected: torch.Tensor | None = None,
    *,
    padding: torch.Tensor | None = None,
    image: torch.Tensor | None = None,
    token_boxes: torch.Tensor | None = None,
    budget: int | None = None,
) -> PruneResult:
    """Prune one image's visual tokens.

    tokens (N, D) float; protected, padding (N,) bool; image (H, W) float in [0, 1]; token_boxes (N, 4)
    float pixel boxes into `image` (NaN rows: no spatial cell); budget overrides the ratio.
    """
    return prune_batch(
        [tokens],
        config,
        protected=[protected],
        padding=[padding],
        image=[image],
        token_boxes=[token_boxes],
        budgets=[budget],
    )[0]


@torch.no_grad()  # pruning happens once at prefill; nothing differentiates through it
def prune_batch(
    tokens: Sequence[torch.Tensor],
    config: PruneConfig,
    *,
    protected: Sequence[torch.Tensor | None] | None = None,
    padding: Sequence[torch.Tensor | None] | None = None,
    image: Sequence[torch.Tensor | None] | None = None,
    token_boxes: Sequence[torch.Tensor | None] | None = None,
    budgets: Sequence[int | None] | None = None,
) -> list[PruneResult]:
    """`prune` for many pages (any lengths); each keyword is a sequence aligned with `tokens` or None.
    RTPrune and norm-only run as one padded batch on accelerators (page by page on CPU, where that is
    faster); the other baselines page by page."""
    n = len(tokens)
    protected, padding = _aligned(protected, n, "protected"), _aligned(padding, n, "padding")
    image, token_boxes = _aligned(image, n, "image"), _aligned(token_boxes, n, "token_boxes")
    budgets = _aligned(budgets, n, "budgets")
    plans = [_plan(tokens[i], config, protected[i], image[i], token_boxes[i], budgets[i]) for i in range(n)]
    active = [i for i in range(n) if config.method != "none" and plans[i].budget < plans[i].n_prunable]
    selections = dict(zip(active, _select(tokens, plans, active, config, padding, token_boxes), strict=True))
    return [_result(tokens[i], plans[i], selections.get(i)) for i in range(n)]


def pixel_budget(
    config: PruneConfig,
    n_prunable: int,
    image: torch.Tensor | None = None,
    token_boxes: torch.Tensor | None = None,
) -> int:
    """Prunable tokens kept when the count may not depend on the features (`count_from_pixels`).

    Fixed retention: default_budget(n_prunable, retention). Dynamic: the ratio with R at redundancy_ref
    and T from `image` (H, W) in [0, 1] over `token_boxes` (N, 4) (no image: T at density_ref, as in
    dynamic_retention). method "none" or identity: n_prunable. The same rule `prune_batch` applies.
    """
    if config.method == "none" or config.is_identity or n_prunable <= 0:
        return max(n_prunable, 0)
    if not config.dynamic:
        return default_budget(n_prunable, config.retention)
    return default_budget(n_prunable, _pixel_ratio(config, image, token_boxes)[0])


def _pixel_ratio(
    config: PruneConfig, image: torch.Tensor | None, token_boxes: torch.Tensor | None
) -> tuple[float, float | None]:
    """The dynamic ratio without its feature signal: R at redundancy_ref -> (ratio, T or None)."""
    dens = None if image is None else text_density(image, config, token_boxes)
    return dynamic_retention(config, config.redundancy_ref, dens), dens


def _aligned(values: Sequence | None, n: int, name: str) -> list:
    if values is None:
        return [None] * n
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} pages")
    return list(values)


def _mask(mask: torch.Tensor | None, n: int, device: torch.device, name: str) -> torch.Tensor:
    if mask is None:
        return torch.zeros(n, dtype=torch.bool, device=device)
    if mask.shape != (n,) or mask.dtype != torch.bool:
        raise ValueError(f"{name} must be a ({n},) bool tensor, got {tuple(mask.shape)} {mask.dtype}")
    return mask.to(device)


def _plan(
    tokens: torch.Tensor,
    config: PruneConfig,
    protected: torch.Tensor | None,
    image: torch.Tensor | None,
    token_boxes: torch.Tensor | None,
    budget: int | None,
) -> _Plan:
    if tokens.ndim != 2 or not tokens.is_floating_point():
        raise ValueError(f"tokens must be a (N, D) float tensor, got {tuple(tokens.shape)} {tokens.dtype}")
    if token_boxes is not None and token_boxes.shape != (tokens.shape[0], 4):
        raise ValueError(f"token_boxes must be ({tokens.shape[0]}, 4), got {tuple(token_boxes.shape)}")
    prunable = ~_mask(protected, tokens.shape[0], tokens.device, "protected")
    n_prunable = int(prunable.sum())
    if config.method == "none":  # the identity whatever budget or ratio was asked for
        return _Plan(prunable, n_prunable, n_prunable, 1.0)
    if budget is not None:
        budget = _check_budget(budget, n_prunable)
        return _Plan(prunable, n_prunable, budget, budget / n_prunable if n_prunable else 1.0)
    if config.is_identity or n_prunable == 0:
        return _Plan(prunable, n_prunable, n_prunable, 1.0)
    if not config.dynamic:
        return _Plan(prunable, n_prunable, default_budget(n_prunable, config.retention), config.retention)
    if config.count_from_pixels:
        ratio, dens = _pixel_ratio(config, image, token_boxes)
        return _Plan(prunable, n_prunable, default_budget(n_prunable, ratio), ratio, None, dens)
    red = redundancy(tokens[prunable], config.redundancy_anchors)
    dens = None if image is None else text_density(image, config, token_boxes)
    ratio = dynamic_retention(config, red, dens)
    return _Plan(prunable, n_prunable, default_budget(n_prunable, ratio), ratio, red, dens)


def _check_budget(budget: object, n_prunable: int) -> int:
    """An integer (Python, NumPy or 0-d tensor) in [1, n_prunable], or 0 when nothing is prunable."""
    try:
        value = operator.index(budget)  # type: ignore[arg-type]
    except TypeError:
        value = None
    if value is None or isinstance(budget, bool) or not min(1, n_prunable) <= value <= n_prunable:
        raise ValueError(f"budget must be an int in [1, {n_prunable}] (the prunable tokens), got {budget!r}")
    return value


def _select(
    tokens: Sequence[torch.Tensor],
    plans: list[_Plan],
    active: list[int],
    config: PruneConfig,
    padding: list,
    token_boxes: list,
) -> list[Selection]:
    if not active:
        return []
    if config.method in ("rtprune", "norm"):
        return rtprune_batch(
            [tokens[i] for i in active],
            [plans[i].prunable for i in active],
            [plans[i].budget for i in active],
            config,
            with_merge=config.method == "rtprune",
        )
    return [_select_one(tokens[i], plans[i], config, padding[i], token_boxes[i]) for i in active]


def _select_one(
    tokens: torch.Tensor,
    plan: _Plan,
    config: PruneConfig,
    padding: torch.Tensor | None,
    token_boxes: torch.Tensor | None,
) -> Selection:
    if config.method == "random":
        return random_select(plan.prunable, plan.budget, config.seed)
    if config.method == "padding":
        pad = None if padding is None else _mask(padding, tokens.shape[0], tokens.device, "padding")
        return padding_select(plan.prunable, plan.budget, pad)
    if config.method == "spatial":
        return spatial_select(plan.prunable, plan.budget, token_boxes)
    if config.method == "divprune":
        return divprune_select(tokens, plan.prunable, plan.budget)
    if config.method == "tome":
        return tome_select(tokens, plan.prunable, plan.budget)
    raise ValueError(f"unknown method {config.method!r}")


def _result(tokens: torch.Tensor, plan: _Plan, selection: Selection | None) -> PruneResult:
    n_prunable = plan.n_prunable
    if selection is None:
        index = torch.arange(tokens.shape[0], device=tokens.device)
        return PruneResult(
            tokens, index, plan.retention, plan.budget, n_prunable, None, plan.redundancy, plan.density
        )
    keep = selection.keep.to(tokens.device) | ~plan.prunable
    index = keep.nonzero().squeeze(1)
    out = tokens[index]
    mass = None
    if selection.merged_index is not None and selection.values is not None:
        rows = torch.searchsorted(index, selection.merged_index.to(tokens.device))
        out[rows] = selection.values.to(device=tokens.device, dtype=tokens.dtype)
        if selection.mass is not None:
            mass = torch.ones(index.numel(), dtype=torch.float32, device=tokens.device)
            mass[rows] = selection.mass.to(tokens.device)
    return PruneResult(
        out, index, plan.retention, plan.budget, n_prunable, mass, plan.redundancy, plan.density
    )
