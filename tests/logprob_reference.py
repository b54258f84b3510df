"""The reference the engines' confidence is tested against: a token's log-probability recomputed from the
model's logits with one plain forward pass (no cache, no padding, fp32) over the prompt and the ids."""

from __future__ import annotations

from typing import Any

import torch


def recomputed_logprobs(engine: Any, page: Any, output_ids: torch.Tensor) -> torch.Tensor:
    """A transformers OcrEngine, one of its PrunedPages and (T,) ids generated after the page's prompt
    -> (T, V) fp32 log-probabilities at the positions that predict each of those ids."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    prompt = engine.build_prompts([page])
    ids = torch.cat([prompt.input_ids, output_ids[None].to(prompt.input_ids.device)], dim=1)
    image = BaseModelOutputWithPooling(pooler_output=[page.features])
    with torch.inference_mode():
        logits = engine.backend.model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            position_ids=torch.arange(ids.shape[1], device=ids.device)[None],
            mm_encoder_outputs={"image": image},
        ).logits
    n_prompt = prompt.input_ids.shape[1]
    return logits[0, n_prompt - 1 : ids.shape[1] - 1].float().log_softmax(-1).cpu()
