"""What the front end knows about a page before its encoder runs, and the in-model pruning step (no vLLM).

vLLM fixes each image's placeholder count in the front end, before the encoder runs, and the model must then
return exactly that many rows. So the kept count follows the pixel count rule (`PruneConfig.
count_from_pixels`, rtprune.api.pixel_budget): fixed retention, or the dynamic ratio from the page's text
density T alone; newlines of fully pruned rows stay. The transformers engine applies the same rule when a
config sets count_from_pixels, so both engines keep the same token indices for the same page.

Per-image values travel from the front end to the model as tensors (vLLM's multimodal kwargs carry tensors):
`page_row` (PAGE_FIELDS, long) and `encode_prune` (PruneConfig as UTF-8 JSON bytes, uint8).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import torch

from rtprune.api import PruneConfig, pixel_budget, prune_batch
from rtprune.deepseek.v1_preprocess import MODES, count_tokens, mode_spec, token_layout

MODE_NAMES: tuple[str, ...] = tuple(MODES)  # tiny, small, base, large, gundam; index = mode id
PAGE_FIELDS = ("width_px", "height_px", "mode_id", "budget", "n_kept")


def effective_prune(prune: PruneConfig) -> PruneConfig:
    """The config the vLLM path runs: the same knobs under the pixel count rule."""
    return prune if prune.count_from_pixels else dataclasses.replace(prune, count_from_pixels=True)


@dataclass(frozen=True)
class PagePlan:
    """One page's visual-token plan: N before pruning, protected tokens, prunable tokens kept."""

    width_px: int
    height_px: int
    mode: str
    n_visual: int
    n_protected: int
    budget: int

    @property
    def n_kept(self) -> int:
        return self.n_protected + self.budget

    def row(self) -> list[int]:
        """PAGE_FIELDS as ints, for the model."""
        return [self.width_px, self.height_px, MODE_NAMES.index(self.mode), self.budget, self.n_kept]

    @classmethod
    def from_row(cls, row: torch.Tensor | list[int]) -> PagePlan:
        width_px, height_px, mode_id, budget, n_kept = (int(v) for v in row)
        mode = MODE_NAMES[mode_id]
        n_visual = count_tokens(width_px, height_px, mode_spec(mode))
        return cls(width_px, height_px, mode, n_visual, n_kept - budget, budget)


def plan_page(
    width_px: int, height_px: int, mode: str, prune: PruneConfig, image_gray: torch.Tensor | None = None
) -> PagePlan:
    """The page's counts under the pixel count rule. image_gray (S, S) in [0, 1] is the padded global view
    (v1_preprocess.prepare_views); only a dynamic ratio reads it."""
    if width_px < 1 or height_px < 1:
        raise ValueError(f"page of {width_px} x {height_px} px has no pixels")
    spec = mode_spec(mode)
    layout = token_layout(width_px, height_px, spec)
    n_protected = int(layout.protected.sum())
    n_prunable = layout.n_tokens - n_protected
    budget = pixel_budget(effective_prune(prune), n_prunable, image_gray, layout.token_boxes)
    return PagePlan(width_px, height_px, mode, layout.n_tokens, n_protected, budget)


def encode_prune(prune: PruneConfig) -> torch.Tensor:
    """PruneConfig -> (L,) uint8 JSON bytes (all fields, sorted)."""
    blob = json.dumps(dataclasses.asdict(prune), sort_keys=True).encode()
    return torch.frombuffer(bytearray(blob), dtype=torch.uint8).clone()


def decode_prune(blob: torch.Tensor) -> PruneConfig:
    return PruneConfig(**json.loads(bytes(blob.to(torch.uint8).tolist()).decode()))


def prune_page(
    features: torch.Tensor, plan: PagePlan, prune: PruneConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) visual features in layout order -> (n_kept, D) kept features and their (n_kept,) indices.

    The same prune_batch call as the transformers engine, with the budget the front end planned, so the
    selection (and the merge) is the same; the count is exactly plan.n_kept.
    """
    layout = token_layout(plan.width_px, plan.height_px, mode_spec(plan.mode))
    if features.shape[0] != layout.n_tokens:
        raise ValueError(f"encoder gave {features.shape[0]} visual tokens, the layout has {layout.n_tokens}")
    if layout.padding is None or layout.token_boxes is None:  # v1 layouts always carry both
        raise ValueError("a v1 token layout without padding or token boxes")
    dev = features.device
    result = prune_batch(
        [features],
        effective_prune(prune),
        protected=[layout.protected.to(dev)],
        padding=[layout.padding.to(dev)],
        token_boxes=[layout.token_boxes.to(dev)],
        budgets=[plan.budget],
    )[0]
    if result.kept_index.numel() != plan.n_kept:
        raise RuntimeError(
            f"pruning kept {result.kept_index.numel()} tokens, the front end planned {plan.n_kept}"
        )
    return result.tokens, result.kept_index
