"""Public pruning API (provisional: norm-only selection; the full library replaces the internals)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class PruneConfig:
    method: str = "rtprune"
    retention: float = 0.84

    def __post_init__(self) -> None:
        if not 0.0 < self.retention <= 1.0:
            raise ValueError(f"retention must be in (0, 1], got {self.retention}")

    def config_hash(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


@dataclass(frozen=True)
class PruneResult:
    tokens: torch.Tensor  # (M, D)
    kept_index: torch.Tensor  # (M,) long, ascending


def prune(tokens: torch.Tensor, config: PruneConfig, protected: torch.Tensor | None = None, **_: object) -> PruneResult:
    n = tokens.shape[0]
    protected = torch.zeros(n, dtype=torch.bool, device=tokens.device) if protected is None else protected
    prunable = (~protected).nonzero().squeeze(1)
    k = max(1, round(config.retention * prunable.numel())) if prunable.numel() else 0
    if config.method == "none" or k >= prunable.numel():
        return PruneResult(tokens, torch.arange(n, device=tokens.device))
    norms = tokens[prunable].float().norm(dim=1)
    top = prunable[torch.topk(norms, k).indices]
    kept = torch.cat([protected.nonzero().squeeze(1), top]).sort().values
    return PruneResult(tokens[kept], kept)


def prune_batch(tokens: Sequence[torch.Tensor], config: PruneConfig, protected: Sequence[torch.Tensor | None] | None = None,
                **kw: object) -> list[PruneResult]:
    protected = protected or [None] * len(tokens)
    return [prune(t, config, p) for t, p in zip(tokens, protected, strict=True)]
