"""OCR engines: pages in, text and per-page usage out, with RTPrune at prefill.

- ``hf``: transformers ``generate`` on static, left-padded batches (``rtprune.engines.hf.engine``).
- ``vllm``: vLLM with continuous batching and a paged KV cache; pruning runs inside the model through this
  project's vLLM plugin (``rtprune.engines.vllm.engine``).

``EngineConfig.backend`` picks one; ``create_engine`` builds it. Both engines are imported lazily, so a
driver that only reads the config loads neither transformers nor vLLM.
"""

from __future__ import annotations

import importlib.util

from rtprune.engines.contract import (
    AsyncEngine,
    Engine,
    EngineConfig,
    EngineIdentity,
    FinishReason,
    PageResult,
    PageUsage,
)
from rtprune.engines.support import check_engine, vllm_problem

__all__ = [
    "AsyncEngine",
    "Engine",
    "EngineConfig",
    "EngineIdentity",
    "FinishReason",
    "PageResult",
    "PageUsage",
    "check_engine",
    "create_engine",
    "resolve_backend",
]


def resolve_backend(config: EngineConfig) -> str:
    """ "hf" or "vllm": the configured one, or for "auto" vllm when it is installed, CUDA is present and
    it serves the model (rtprune.engines.support)."""
    if config.backend != "auto":
        return config.backend
    if importlib.util.find_spec("vllm") is None or vllm_problem(config) is not None:
        return "hf"
    import torch

    return "vllm" if torch.cuda.is_available() else "hf"


def create_engine(config: EngineConfig) -> Engine:
    """The engine `config.backend` names, loaded and ready (model weights included)."""
    check_engine(config)
    if resolve_backend(config) == "vllm":
        from rtprune.engines.vllm.engine import VllmEngine

        return VllmEngine(config)
    from rtprune.engines.hf.engine import OcrEngine

    return OcrEngine(config)
