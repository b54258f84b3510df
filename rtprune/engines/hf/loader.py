"""EngineConfig -> a loaded Backend: tiny-random models built in code, local checkpoints, or hub ids."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from rtprune.engines.contract import EngineConfig
from rtprune.engines.support import MODEL_TYPES, TINY_MODELS
from rtprune.models.base import Backend

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> torch.device:
    """ "auto" -> cuda when a GPU is visible, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """ "auto" -> bf16 on CUDA (halves memory, tensor cores), fp32 on CPU (bf16 matmuls are slow there)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[dtype]


def backend_class(generation: str) -> Any:
    """ "v1" / "v2" -> the adapter class, imported only when needed."""
    if generation == "v2":
        from rtprune.models.deepseek_v2 import DeepseekOcr2Backend

        return DeepseekOcr2Backend
    from rtprune.models.deepseek_v1 import DeepseekOcrV1Backend

    return DeepseekOcrV1Backend


def detect_generation(checkpoint_dir: Path) -> str:
    """Read config.json's model_type -> "v1" or "v2"."""
    config_path = checkpoint_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{checkpoint_dir} has no config.json; is it a checkpoint directory?")
    model_type = json.loads(config_path.read_text()).get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"{config_path}: model_type {model_type!r} is not a DeepSeek-OCR checkpoint "
            f"(expected one of {sorted(MODEL_TYPES)}); set backend explicitly if it is"
        )
    return MODEL_TYPES[model_type]


def resolve_checkpoint(model: str) -> Path:
    """A local directory as is; a hub id through huggingface_hub (cache first, then download)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        return Path(snapshot_download(model))
    except HFValidationError as err:
        raise FileNotFoundError(f"model {model!r} is neither a local directory nor a valid hub id") from err
    except Exception as err:  # offline, not found, gated: all end the same way for the user
        raise RuntimeError(
            f"could not fetch model {model!r} from the Hugging Face hub ({type(err).__name__}: {err}). "
            f"Download it where the network is reachable (huggingface-cli download {model} --local-dir DIR) "
            f"and set model to that local directory, or use model='tiny-random-v1'/'tiny-random-v2' for an "
            f"offline smoke run."
        ) from err


def load_backend(config: EngineConfig) -> Backend:
    """Build or load the backend named by config.model, on config.device in config.dtype."""
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    if config.model in TINY_MODELS:
        generation = config.generation if config.generation != "auto" else TINY_MODELS[config.model]
        logger.warning(
            "%s has random weights: its text is meaningless (for tests and smoke runs only)", config.model
        )
        return backend_class(generation).tiny_random(
            mode=config.mode, seed=config.seed, dtype=dtype, device=str(device), prompt=config.prompt
        )
    checkpoint = resolve_checkpoint(config.model)
    generation = config.generation if config.generation != "auto" else detect_generation(checkpoint)
    backend = backend_class(generation).from_pretrained(
        str(checkpoint), mode=config.mode, dtype=dtype, device=str(device), prompt=config.prompt
    )
    backend.model_id = config.model  # the name the user gave (hub id), not the cache path it resolved to
    return backend
