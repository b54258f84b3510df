"""RTPrune on a batch of pages: stage 1 (norm selection) and stage 2 (OT merge), vectorised by padding.

Pages of different lengths are right-padded to (B, N_max, D); padded positions are neither prunable nor
merge sources/targets, so each page's result equals the one it gets alone (up to float summation order).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from rtprune.baselines import Selection
from rtprune.config import PruneConfig
from rtprune.select import select_by_norm
from rtprune.transport import SinkhornSpec, col_exponent, cosine_cost, merge, solve_plan


def sinkhorn_spec(config: PruneConfig) -> SinkhornSpec:
    """The solver settings a config asks for."""
    kappa = col_exponent(config.ot_formulation, config.ot_epsilon, config.ot_tau)
    return SinkhornSpec(config.ot_epsilon, kappa, config.ot_max_iter, config.ot_tol, config.ot_check_every)


def front_positions(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of each row's True entries first (in index order), cut to the widest row.

    mask (B, N) bool -> (index (B, L) long, valid (B, L) bool), L = max row count (at least 1).
    """
    count = mask.sum(dim=1)
    width = max(1, int(count.max()))
    order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices[:, :width]
    valid = torch.arange(width, device=mask.device)[None, :] < count[:, None]
    return order, valid


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), index (B, L) -> (B, L, D). Advanced indexing copies whole rows, unlike gather."""
    return x[torch.arange(x.shape[0], device=x.device)[:, None], index]


def ot_merge(
    x: torch.Tensor, selected: torch.Tensor, prunable: torch.Tensor, config: PruneConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stage 2 on a padded batch. x (B, N, D), selected/prunable (B, N) bool -> (index (B, K) long,
    valid (B, K) bool, values (B, K, D) fp32, mass (B, K) fp32): the merged selected tokens, each row's
    valid entries first and in ascending index order."""
    src_idx, src_valid = front_positions(prunable & ~selected)
    tgt_idx, tgt_valid = front_positions(selected)
    dropped, kept = gather_rows(x, src_idx), gather_rows(x, tgt_idx)
    weights = solve_plan(
        cosine_cost(dropped, kept),
        src_valid,
        tgt_valid,
        config.ot_formulation,
        sinkhorn_spec(config),
        config.ot_dustbin_cost,
    )
    new, mass = merge(kept, dropped, weights, config.merge, config.merge_step)
    return tgt_idx, tgt_valid, new, mass


def rtprune_batch(
    tokens: Sequence[torch.Tensor],
    prunable: Sequence[torch.Tensor],
    budgets: Sequence[int],
    config: PruneConfig,
    with_merge: bool = True,
    padded: bool | None = None,
) -> list[Selection]:
    """Stage 1 (+ stage 2 when with_merge) for pages with at least one token to drop.

    tokens[i] (N_i, D) on one device, prunable[i] (N_i,) bool, budgets[i] in [1, n_prunable_i).
    padded: run all pages as one padded batch (default: on accelerators only; on a CPU the padded
    Sinkhorn state of a batch falls out of cache and costs about twice as much per page as one page
    at a time, while on a GPU batching amortises the kernel launches).
    """
    if padded is None:
        padded = tokens[0].device.type != "cpu"
    if not padded and len(tokens) > 1:
        return [
            sel
            for i in range(len(tokens))
            for sel in rtprune_batch(
                tokens[i : i + 1], prunable[i : i + 1], budgets[i : i + 1], config, with_merge
            )
        ]
    return _padded_batch(tokens, prunable, budgets, config, with_merge)


def _padded_batch(
    tokens: Sequence[torch.Tensor],
    prunable: Sequence[torch.Tensor],
    budgets: Sequence[int],
    config: PruneConfig,
    with_merge: bool,
) -> list[Selection]:
    lengths = [t.shape[0] for t in tokens]
    if len(tokens) == 1:  # no padding needed: skip the copy
        x, mask = tokens[0][None], prunable[0][None].to(tokens[0].device)
    else:
        x = pad_sequence(list(tokens), batch_first=True)
        mask = pad_sequence([p.to(x.device) for p in prunable], batch_first=True, padding_value=False)
    budget_t = torch.tensor(list(budgets), dtype=torch.long, device=x.device)
    selected = select_by_norm(x, mask, budget_t, config.norm_tie_tol)
    if not with_merge:
        return [Selection(selected[i, :n]) for i, n in enumerate(lengths)]
    index, valid, values, mass = ot_merge(x, selected, mask, config)
    counts = valid.sum(dim=1).tolist()
    return [
        Selection(selected[i, :n], index[i, :k], values[i, :k], mass[i, :k])
        for i, (n, k) in enumerate(zip(lengths, counts, strict=True))
    ]
