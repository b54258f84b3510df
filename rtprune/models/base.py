"""The contract between the engine and a model adapter (backend).

A backend owns everything model-specific: loading, page preprocessing, the visual-token layout and the
call that turns pixels into LLM-input visual embeddings. The engine owns everything generic: pruning,
placeholder bookkeeping, batching, generation, timing. No code outside an adapter branches on the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from rtprune.deepseek.layout import TokenLayout


@dataclass
class PreparedPage:
    """One page ready for the encoder: model inputs for this page alone, plus its token layout.

    model_inputs: tensors for this page only (e.g. pixel_values (V, 3, S, S)); the backend collates many.
    image_gray:   (H, W) float in [0, 1], the page as the encoder sees it (after resize/pad), for the
                  textual-density estimate of the dynamic retention ratio.
    """

    model_inputs: dict[str, Any]
    layout: TokenLayout
    image_gray: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """A loaded DeepSeek-OCR model generation. Implementations: rtprune.models.deepseek_v1 / deepseek_v2."""

    model: torch.nn.Module  # a transformers *ForConditionalGeneration, eval mode
    tokenizer: Any  # a transformers tokenizer (tiny-random backends build a byte-level one in code)
    image_token_id: int
    model_id: str  # hub id, local path, or "tiny-random-..."
    mode: str  # v1 resolution mode; "dynamic" for DeepSeek-OCR-2
    prompt: str  # the prompt text prompt_ids() builds around the image placeholders

    def prepare(self, image: Any) -> PreparedPage:
        """PIL.Image (RGB) -> PreparedPage, following the model's own preprocessing rules for its mode."""
        ...

    def visual_tokens(self, width_px: int, height_px: int) -> int:
        """N for a page of this size, without rendering it (used to bucket pages of similar cost)."""
        ...

    def encode(self, pages: Sequence[PreparedPage]) -> list[torch.Tensor]:
        """Visual embeddings at the LLM input (after the projector), one (N_i, D) tensor per page, in
        the order of `pages[i].layout`. Calls the model's own get_image_features."""
        ...

    def prompt_ids(self, n_image_tokens: int) -> list[int]:
        """Token ids of the whole prompt with n_image_tokens image placeholders (BOS first)."""
        ...
