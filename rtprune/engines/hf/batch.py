"""Pure tensor bookkeeping between pruning and generation: newline collapse, prompt positions, left padding.

No transformers and no model here, so every rule is testable on small hand-made tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

PositionMode = Literal["compact", "original"]


@dataclass(frozen=True)
class PrunedPage:
    """One page's visual tokens after pruning.

    features:   (M, D) LLM-input embeddings of the kept (or merged) tokens, in original order.
    kept_index: (M,) long, ascending, each kept token's index in the page's unpruned visual sequence (N).
    n_visual:   N, the page's visual tokens before pruning.
    """

    features: torch.Tensor
    kept_index: torch.Tensor
    n_visual: int

    @property
    def n_kept(self) -> int:
        return int(self.kept_index.numel())


def collapse_newlines(kept_index: torch.Tensor, newline: torch.Tensor | None) -> torch.Tensor:
    """(M,) kept indices, (N,) newline flags -> (M,) bool: keep all but the 2nd+ of each run of kept newlines.

    A row whose tokens were all pruned leaves its newline next to the previous row's; one newline is enough to
    mark the row break, and each extra one would cost a prefill position.
    """
    if newline is None or kept_index.numel() == 0:
        return torch.ones(kept_index.numel(), dtype=torch.bool, device=kept_index.device)
    is_nl = newline.to(kept_index.device)[kept_index]
    repeat = torch.zeros_like(is_nl)
    repeat[1:] = is_nl[1:] & is_nl[:-1]
    return ~repeat


def prompt_with_positions(
    full_ids: Sequence[int], image_token_id: int, kept_index: torch.Tensor, mode: PositionMode
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unpruned prompt ids (T + N,) and kept visual indices (M,) -> pruned ids (T + M,) and their positions.

    "original" keeps each surviving token's unpruned position (gaps where tokens were pruned), so text after
    the image sits where the unpruned model would see it; "compact" renumbers 0..T+M-1.
    """
    ids = torch.tensor(full_ids, dtype=torch.long)
    is_image = ids == image_token_id
    keep = ~is_image
    image_pos = is_image.nonzero().squeeze(1)
    keep[image_pos[kept_index.cpu()]] = True
    pruned = ids[keep]
    positions = keep.nonzero().squeeze(1) if mode == "original" else torch.arange(pruned.numel())
    return pruned, positions


@dataclass(frozen=True)
class PromptBatch:
    """Left-padded prompts. input_ids, attention_mask, position_ids: (B, L) long; lengths: real tokens/row."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    lengths: list[int]

    def to(self, device: torch.device | str) -> PromptBatch:
        return PromptBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.position_ids.to(device),
            self.lengths,
        )


def left_pad(ids: Sequence[torch.Tensor], positions: Sequence[torch.Tensor], pad_id: int) -> PromptBatch:
    """Rows of different lengths -> one left-padded batch. Pads get position 0 and mask 0, as generate's own
    position rule gives them, so keep-all reproduces an unpadded generate exactly."""
    width = max(int(t.numel()) for t in ids)
    batch = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    pos = torch.zeros((len(ids), width), dtype=torch.long)
    for row, (t, p) in enumerate(zip(ids, positions, strict=True)):
        n = int(t.numel())
        batch[row, width - n :], mask[row, width - n :], pos[row, width - n :] = t, 1, p
    return PromptBatch(batch, mask, pos, [int(t.numel()) for t in ids])


def split_shares(total_s: float, weights: Sequence[float]) -> list[float]:
    """Share a batch's measured seconds among its pages in proportion to their work; shares sum to total_s."""
    weight_sum = float(sum(weights))
    if weight_sum <= 0:
        return [total_s / len(weights)] * len(weights)
    return [total_s * w / weight_sum for w in weights]
