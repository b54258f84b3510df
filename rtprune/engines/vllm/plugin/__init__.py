"""DeepSeek-OCR v1 on vLLM with RTPrune pruning inside the model: a vLLM general plugin.

Installed with this package, the entry point `vllm.general_plugins: rtprune = rtprune.engines.vllm.plugin:register`
runs in every vLLM process (front end, engine core, workers; `vllm serve` and ray.data.llm too) and
registers ARCHITECTURE (lazily, by "module:Class") and drops vLLM's known-noise warnings at its default
log level (noise.py); in vLLM's child processes it also makes them end when their parent dies
(lifeline.py). A v1 checkpoint selects it with `hf_overrides={"architectures": [ARCHITECTURE]}`
(`vllm serve DIR --hf-overrides '{"architectures": ["RtpruneDeepseekOCRForCausalLM"]}'`).

API (importing this package does not import vLLM):
  ARCHITECTURE                          our architecture name.
  engine_kwargs(model_dir, mode, ...)   -> dict for vllm.LLM(**kw) / AsyncEngineArgs(**kw).
  build_request(image, *, mode, prune, prompt) -> the vLLM prompt dict (prompt text, multi_modal_data,
                                        mm_processor_kwargs with this page's mode and PruneConfig).
  visual_token_counts(width_px, height_px, mode, prune, image=None) -> (visual_tokens, visual_tokens_kept).
  effective_prune(prune)                the PruneConfig the plugin runs (count_from_pixels set).
  fixture.prepare_model_dir(src, dst)   a vLLM-loadable folder from a v1 checkpoint without a tokenizer.

Modes: tiny (512), small (640), base (1024), large (1280), gundam (1024 + 640 crops), with the original
code's preprocessing and token counts (rtprune.deepseek.v1_preprocess). Pruning: the kept count is fixed in
the front end by the pixel count rule (PruneConfig.count_from_pixels; see docs/vllm.md).
"""

from __future__ import annotations

from rtprune.engines.vllm.plugin.page_plan import effective_prune
from rtprune.engines.vllm.plugin.requests import (
    ARCHITECTURE,
    MODEL_CLASS,
    build_request,
    engine_kwargs,
    visual_token_counts,
)

__all__ = [
    "ARCHITECTURE",
    "build_request",
    "effective_prune",
    "engine_kwargs",
    "register",
    "visual_token_counts",
]


def register() -> None:
    """vLLM's plugin hook: make ARCHITECTURE known to this process's model registry (idempotent), and in a
    vLLM child process (engine core, worker) end it when its parent dies (rtprune.engines.vllm.plugin.lifeline)."""
    from vllm import ModelRegistry

    from rtprune.engines.vllm.plugin.lifeline import watch_parent
    from rtprune.engines.vllm.plugin.noise import drop_known_noise

    watch_parent()
    drop_known_noise()

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, MODEL_CLASS)
