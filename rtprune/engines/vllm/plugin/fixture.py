"""A vLLM-loadable model folder from a v1 checkpoint that ships without a tokenizer (tiny test models).

vLLM loads every *.safetensors file in the folder as weights and reads the tokenizer from it, so the folder
gets config.json (auto_map removed: a tokenizer beside it would otherwise ask to trust remote code),
model.safetensors, and the byte-level tiny tokenizer with `<image>` at the config's image_token_id that adds
BOS like DeepSeek-OCR's own tokenizer.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from rtprune.models.v1_config import DEFAULT_IMAGE_TOKEN_ID


def prepare_model_dir(src: str | Path, dst: str | Path) -> Path:
    """Copy (link where possible) src's config.json and model.safetensors into dst and add a tokenizer."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    config = json.loads((src / "config.json").read_text())
    config.pop("auto_map", None)
    (dst / "config.json").write_text(json.dumps(config, indent=1))
    weights = dst / "model.safetensors"
    if not weights.exists():
        try:
            os.link(src / "model.safetensors", weights)
        except OSError:
            shutil.copyfile(src / "model.safetensors", weights)
    vocab = int((config.get("language_config") or config)["vocab_size"])
    save_tokenizer(dst, vocab, int(config.get("image_token_id", DEFAULT_IMAGE_TOKEN_ID)))
    return dst


def save_tokenizer(directory: Path, vocab_size: int, image_token_id: int) -> None:
    """The tiny tokenizer, BOS prepended on encode (as DeepSeek-OCR's LlamaTokenizerFast does)."""
    from tokenizers import processors

    from rtprune.models.tiny_tokenizer import BOS, build_tiny_tokenizer

    tok = build_tiny_tokenizer.__wrapped__(vocab_size, image_token_id)  # a fresh one: it is changed below
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, 0)]
    )
    tok.save_pretrained(str(directory))
