"""What the vLLM engine settles before vLLM starts: the model folder it loads, whether it runs on CPU (the
memory defaults), and how much vLLM logs. No vLLM import."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from rtprune.engines.contract import EngineConfig
from rtprune.engines.vllm.settings import VllmSettings
from rtprune.engines.vllm.tiny_model import TINY_V1, tiny_model_dir

LOG_LEVEL_ENV = "VLLM_LOGGING_LEVEL"


def model_source(config: EngineConfig, settings: VllmSettings) -> str:
    """What vLLM loads: the cached folder of the built-in tiny-random-v1 (made on first use), else the
    configured folder or hub id as is."""
    if config.model != TINY_V1:
        return config.model
    cache = Path(settings.model_cache_dir).expanduser() if settings.model_cache_dir else None
    return str(tiny_model_dir(config.seed, cache))


def runs_on_cpu(config: EngineConfig) -> bool:
    """device "cpu", or "auto" on a machine without CUDA (vLLM's CPU build)."""
    if config.device != "auto":
        return config.device == "cpu"
    import torch

    return not torch.cuda.is_available()


def quiet_vllm(level: str) -> str:
    """vLLM's log level for this process and the engine processes it starts: the environment's
    VLLM_LOGGING_LEVEL when set, else `level`. Set before vLLM is imported (vLLM reads it then, and its
    child processes inherit it); the "vllm" logger is set too, for a process that imported vLLM already.
    -> the level in force."""
    chosen = os.environ.setdefault(LOG_LEVEL_ENV, level).upper()
    logging.getLogger("vllm").setLevel(chosen)
    return chosen
