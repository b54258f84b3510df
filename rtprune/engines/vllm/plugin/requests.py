"""Building vLLM engine arguments and page requests for the plugin (no vLLM import: usable in any driver)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtprune.api import PruneConfig
from rtprune.deepseek.v1_preprocess import global_view, mode_spec
from rtprune.engines.vllm.plugin.page_plan import effective_prune, plan_page

ARCHITECTURE = "RtpruneDeepseekOCRForCausalLM"
MODEL_CLASS = "rtprune.engines.vllm.plugin.model:RtpruneDeepseekOCRForCausalLM"
MODE_KWARG, PRUNE_KWARG = (
    "rtprune_mode",
    "rtprune_prune",
)  # as rtprune.engines.vllm.plugin.processor reads them


def engine_kwargs(
    model_dir: str | Path,
    mode: str = "gundam",
    *,
    dtype: str = "auto",
    accept_views: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Keyword arguments for vllm.LLM / AsyncEngineArgs serving a v1 checkpoint with the plugin.

    mode: the engine's default v1 mode (a request's own rtprune_mode wins). accept_views: also accept
    pre-processed view tensors as images (vLLM calls this enable_mm_embeds). The processor cache and prefix
    caching are off, as DeepSeek-OCR's peers run it: each page is seen once. overrides win over all.
    """
    mode_spec(mode)
    kwargs: dict[str, Any] = {
        "model": str(model_dir),
        "hf_overrides": {"architectures": [ARCHITECTURE]},  # selects our class over vLLM's own
        "mm_processor_kwargs": {MODE_KWARG: mode},
        "mm_processor_cache_gb": 0,
        "enable_prefix_caching": False,
        "limit_mm_per_prompt": {"image": 1},  # one page per request; keeps profiling to one image
        "dtype": dtype,
    }
    if accept_views:
        kwargs["enable_mm_embeds"] = True
    return kwargs | overrides


def prune_kwarg(prune: PruneConfig | None) -> str:
    """A PruneConfig as the JSON string the processor reads (under the pixel count rule)."""
    prune = PruneConfig(method="none") if prune is None else effective_prune(prune)
    return json.dumps(dataclasses.asdict(prune), sort_keys=True)


def build_request(image: Any, *, mode: str, prune: PruneConfig | None, prompt: str) -> dict[str, Any]:
    """One page as a vLLM prompt: the text with its `<image>` tag, the PIL page, and this page's settings."""
    mode_spec(mode)
    if "<image>" not in prompt:
        raise ValueError(f"the prompt must contain '<image>': {prompt!r}")
    return {
        "prompt": prompt,
        "multi_modal_data": {"image": image},
        "mm_processor_kwargs": {MODE_KWARG: mode, PRUNE_KWARG: prune_kwarg(prune)},
    }


def page_gray(image: Any, mode: str) -> torch.Tensor:
    """The page's global view in grayscale (S, S) in [0, 1], exactly as v1_preprocess.prepare_views makes it."""
    view = global_view(image.convert("RGB"), mode_spec(mode))
    return torch.from_numpy(np.asarray(view.convert("L"), dtype=np.float32) / 255.0)


def visual_token_counts(
    width_px: int, height_px: int, mode: str, prune: PruneConfig | None, image: Any = None
) -> tuple[int, int]:
    """(visual tokens before pruning, visual tokens the model keeps) for a page through the plugin.

    A dynamic ratio reads the page's text density, so it needs `image` (the PIL page); fixed retention
    needs only the size.
    """
    prune = PruneConfig(method="none") if prune is None else effective_prune(prune)
    gray = None
    if prune.dynamic and not prune.is_identity:
        if image is None:
            raise ValueError("a dynamic ratio's kept count depends on the page's pixels: pass image=")
        gray = page_gray(image, mode)
    plan = plan_page(width_px, height_px, mode, prune, gray)
    return plan.n_visual, plan.n_kept
