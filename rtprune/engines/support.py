"""Which engine serves which model, told from the config alone: no vLLM, transformers, torch or weights are
loaded, so a driver checks the pairing before anything starts (jobs.digitize, before Ray).

The transformers engine serves both DeepSeek-OCR generations and the tiny random models built in code; the
vLLM engine serves v1 checkpoints (folders or hub ids) and tiny-random-v1 (a folder it makes and caches on
first use: rtprune.engines.vllm.tiny_model), never v2."""

from __future__ import annotations

import json
from pathlib import Path

from rtprune.engines.contract import EngineConfig

# Random-weight models built in code (rtprune.engines.hf.loader), and the generation of each.
TINY_MODELS = {"tiny-random-v1": "v1", "tiny-random-v2": "v2"}
# config.json model_type of each generation's checkpoints. v1 is read in its original hub format only
# (deepseek_vl_v2); the v1 adapter translates it to transformers' unlimited_ocr classes itself.
MODEL_TYPES = {"deepseek_vl_v2": "v1", "deepseek_ocr2": "v2"}


def _config_json(model: str) -> Path | None:
    """A checkpoint's config.json on this machine: in a local folder, or a hub id's in the local Hugging
    Face cache (never downloaded here)."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder / "config.json" if (folder / "config.json").is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id, no cache: not known here
        return None
    return Path(cached) if isinstance(cached, str) else None


def known_generation(config: EngineConfig) -> str | None:
    """ "v1" or "v2" as far as the config and this machine tell (the configured generation, a tiny model's,
    a checkpoint's config.json); None when only loading the model would."""
    if config.generation != "auto":
        return config.generation
    if config.model in TINY_MODELS:
        return TINY_MODELS[config.model]
    path = _config_json(config.model)
    if path is None:
        return None
    try:
        model_type = json.loads(path.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return MODEL_TYPES.get(model_type)


def vllm_problem(config: EngineConfig) -> str | None:
    """Why the vLLM engine cannot serve config's model (one line), or None when it can as far as is known."""
    if known_generation(config) == "v2":
        return (
            f"engine.model {config.model!r} is DeepSeek-OCR v2, which the vLLM engine does not serve "
            "(it serves v1 checkpoints): use engine.backend=hf"
        )
    return None


def check_engine(config: EngineConfig) -> None:
    """Raise ValueError (one line) when the configured engine cannot serve the configured model. "auto"
    never picks an engine that cannot (rtprune.engines.resolve_backend)."""
    if config.backend == "vllm":
        problem = vllm_problem(config)
        if problem is not None:
            raise ValueError(problem)
