"""The built-in tiny-random-v1 model as a folder vLLM can load, made once per machine and cached.

The transformers engine builds tiny-random-v1 in memory; vLLM reads a model only from a folder. So the vLLM
engine, given "tiny-random-v1", makes one on first use: the tiny v1 config with the sizes vLLM's parts need
(attention heads of size 32, the smallest vLLM's CPU attention takes, where the transformers engine's tiny
model has 16; SAM's 256-channel neck and 512-channel first downsampling, which vLLM's SAM fixes; SAM's MLP
at 4x its width), seeded random weights written in v1's hub format (model.safetensors), and the byte-level
tiny tokenizer with `<image>` at the config's image_token_id (rtprune.engines.vllm.plugin.fixture). Its
text is as meaningless as the transformers engine's, and not the same text (other weights).

The folder's name carries a hash of its config, seed and format, so a changed builder makes a new folder and
never reads an old one. It is written into a temporary folder beside its place, then renamed into place: two
processes making it at once both finish, the first rename wins, and no one reads a half-written folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

TINY_V1 = "tiny-random-v1"
TEXT_HEADS = 2
SAM = {"hidden_size": 64, "num_attention_heads": 2, "mlp_dim": 256, "output_channels": 256,
       "downsample_channels": [512, 64]}  # fmt: skip
CLIP = {"num_attention_heads": 2}
# Bump when what is written changes beyond the config and seed (tokenizer, file layout): a new folder then.
FORMAT = 1


def default_cache_root() -> Path:
    """$XDG_CACHE_HOME/rtprune-ocr, else ~/.cache/rtprune-ocr (the convention Hugging Face's cache follows)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rtprune-ocr"


def _tiny_config() -> Any:
    from rtprune.models.deepseek_v1 import tiny_random_config

    return tiny_random_config(text_heads=TEXT_HEADS, sam=SAM, clip=CLIP)


def folder_name(config_json: dict[str, Any], seed: int) -> str:
    """tiny-random-v1-vllm-<12 hex>: the hash of what the folder holds."""
    blob = json.dumps({"config": config_json, "seed": seed, "format": FORMAT}, sort_keys=True)
    return f"{TINY_V1}-vllm-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def write_tiny_model(directory: Path, config: Any, seed: int) -> None:
    """config.json (v1 hub layout), model.safetensors (seeded random weights) and the tokenizer."""
    from rtprune.engines.vllm.plugin.fixture import save_tokenizer
    from rtprune.models.deepseek_v1 import save_v1_checkpoint, tiny_random_model

    save_v1_checkpoint(tiny_random_model(config, seed), config, directory)
    save_tokenizer(directory, config.text_config.vocab_size, config.image_token_id)


def tiny_model_dir(seed: int = 0, cache_root: Path | None = None) -> Path:
    """The tiny-random-v1 folder for `seed` under cache_root (default_cache_root() when None), made if it
    is not there yet; a folder already there is returned as is (nothing rewritten)."""
    from rtprune.models.v1_config import v1_config_json

    config = _tiny_config()
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    final = root / folder_name(v1_config_json(config), seed)
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        write_tiny_model(staging, config, seed)
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():  # not another process's finished folder: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
