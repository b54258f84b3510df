"""Baselines RTPrune must beat, at the same budget and through the same API.

Each works on one page: tokens (N, D), prunable (N,) bool, budget (kept prunable tokens) and returns a
`Selection`: keep (N,) bool over prunable tokens, and, for methods that merge (ToMe), the new fp32
values and masses of the kept rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Selection:
    """keep (N,) bool over prunable tokens. When tokens were merged: merged_index (K,) long ascending
    (the kept prunable positions whose values changed), values (K, D) fp32 and mass (K,) fp32 for them."""

    keep: torch.Tensor
    merged_index: torch.Tensor | None = None
    values: torch.Tensor | None = None
    mass: torch.Tensor | None = None


def even_pick(indices: torch.Tensor, k: int) -> torch.Tensor:
    """k of the given (ordered) indices, evenly spaced along their order: positions floor((i + 0.5) L / k)."""
    n = indices.numel()
    if k >= n:
        return indices
    pos = ((torch.arange(k, device=indices.device, dtype=torch.float64) + 0.5) * n / k).floor().long()
    return indices[pos]


def _mask_of(indices: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    keep = torch.zeros(n, dtype=torch.bool, device=device)
    keep[indices] = True
    return keep


def random_select(prunable: torch.Tensor, budget: int, seed: int) -> Selection:
    """A uniformly random subset, drawn on the CPU from `seed` so every device draws the same one."""
    idx = prunable.nonzero().squeeze(1)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    perm = torch.randperm(idx.numel(), generator=gen).to(idx.device)
    return Selection(_mask_of(idx[perm[:budget]], prunable.numel(), prunable.device))


def padding_select(prunable: torch.Tensor, budget: int, padding: torch.Tensor | None) -> Selection:
    """Drop padding tokens first. budget <= content tokens: an evenly spaced subset of the content
    tokens (all padding dropped); budget > content: all content plus evenly spaced padding tokens."""
    if padding is None:
        raise ValueError("method 'padding' needs a padding mask (TokenLayout.padding); none was given")
    content = (prunable & ~padding.to(prunable.device)).nonzero().squeeze(1)
    pad = (prunable & padding.to(prunable.device)).nonzero().squeeze(1)
    if budget <= content.numel():
        chosen = even_pick(content, budget)
    else:
        chosen = torch.cat([content, even_pick(pad, budget - content.numel())])
    return Selection(_mask_of(chosen, prunable.numel(), prunable.device))


def spatial_select(prunable: torch.Tensor, budget: int, token_boxes: torch.Tensor | None) -> Selection:
    """Evenly spaced tokens along the raster order (box centre y, then x) of the tokens that have a box.
    Prunable tokens without a box (NaN rows) follow in index order; with no boxes at all (DeepSeek-OCR-2)
    this falls back to evenly spaced token indices, i.e. uniform over the model's own token order."""
    idx = prunable.nonzero().squeeze(1)
    if token_boxes is not None and idx.numel():
        boxes = token_boxes.to(device=prunable.device, dtype=torch.float64)[idx]
        has_box = ~torch.isnan(boxes).any(dim=1)
        cx = (boxes[:, 0] + boxes[:, 2]) / 2
        cy = (boxes[:, 1] + boxes[:, 3]) / 2
        big = torch.finfo(torch.float64).max
        cx = torch.where(has_box, cx, big)
        cy = torch.where(has_box, cy, big)
        order = torch.sort(cx, stable=True).indices
        order = order[torch.sort(cy[order], stable=True).indices]
        idx = idx[order]
    return Selection(_mask_of(even_pick(idx, budget), prunable.numel(), prunable.device))


def divprune_select(tokens: torch.Tensor, prunable: torch.Tensor, budget: int) -> Selection:
    """DivPrune: greedy max-min diversity on cosine distance. The first pick is the token farthest from
    its nearest neighbour; each next pick maximises its distance to the nearest picked token. Ties go to
    the lower index."""
    idx = prunable.nonzero().squeeze(1)
    x = torch.nn.functional.normalize(torch.nan_to_num(tokens[idx].float()), dim=-1, eps=1e-12)
    dist = 1.0 - x @ x.T
    n = idx.numel()
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    first = int(dist.masked_fill(eye, float("inf")).amin(dim=1).argmax())
    chosen = torch.empty(budget, dtype=torch.long, device=x.device)
    chosen[0] = first
    min_dist = dist[first].clone()
    min_dist[first] = -float("inf")
    for i in range(1, budget):  # inherently sequential: each pick depends on the previous ones
        pick = torch.argmax(min_dist)
        chosen[i] = pick
        min_dist = torch.minimum(min_dist, dist[pick])
        min_dist[pick] = -float("inf")
    return Selection(_mask_of(idx[chosen], prunable.numel(), prunable.device))


def tome_select(tokens: torch.Tensor, prunable: torch.Tensor, budget: int) -> Selection:
    """ToMe bipartite soft matching, repeated until `budget` prunable tokens remain. Each round splits
    the current tokens alternately into A and B (in index order), links every A to its most similar B
    (cosine of the current merged values), and merges the r most similar A into their B by size-weighted
    mean (r = min(still to remove, |A|)). Survivors keep the index of their B (or unmerged A) token."""
    idx = prunable.nonzero().squeeze(1)
    sums = torch.nan_to_num(tokens[idx].float())
    sizes = torch.ones(idx.numel(), dtype=torch.float32, device=tokens.device)
    to_remove = idx.numel() - budget
    while to_remove > 0:
        a, b = torch.arange(0, idx.numel(), 2), torch.arange(1, idx.numel(), 2)
        a, b = a.to(idx.device), b.to(idx.device)
        feat = torch.nn.functional.normalize(sums / sizes[:, None], dim=-1, eps=1e-12)
        score = feat[a] @ feat[b].T
        best = score.argmax(dim=1)
        r = min(to_remove, a.numel())
        merged = torch.sort(score.gather(1, best[:, None]).squeeze(1), descending=True, stable=True).indices[
            :r
        ]
        sums.index_add_(0, b[best[merged]], sums[a[merged]])
        sizes.index_add_(0, b[best[merged]], sizes[a[merged]])
        alive = torch.ones(idx.numel(), dtype=torch.bool, device=idx.device)
        alive[a[merged]] = False
        idx, sums, sizes = idx[alive], sums[alive], sizes[alive]
        to_remove -= r
    return Selection(_mask_of(idx, prunable.numel(), prunable.device), idx, sums / sizes[:, None], sizes)
