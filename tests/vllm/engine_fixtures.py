"""Shared pieces of the vLLM engine tests: the fixture model folder, both engines on it, test pages.

One vLLM engine per test module (starting one costs 30-50 s on a small CPU machine).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from rtprune.api import PruneConfig
from rtprune.engines.contract import EngineConfig, PageResult

REPO = Path(__file__).resolve().parents[2]
# <repo>/../shared in the main checkout; a git worktree one level deeper sees it at <repo>/../../shared.
_CANDIDATES = [
    base / "shared" / "fixtures" / "deepseek-ocr-v1-tiny" for base in (REPO.parent, REPO.parent.parent)
]
FIXTURE = next((c for c in _CANDIDATES if (c / "model.safetensors").is_file()), _CANDIDATES[0])


def cpu_env() -> None:
    """vLLM's CPU settings for a shared machine: no thread pinning, two threads."""
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    os.environ.setdefault("OMP_NUM_THREADS", "2")


def model_dir(root: Path) -> Path:
    """The v1 fixture as a folder both engines load (config, weights, tokenizer)."""
    from rtprune.engines.vllm.plugin.fixture import prepare_model_dir

    return prepare_model_dir(FIXTURE, root / "deepseek-ocr-v1-tiny")


def engine_config(folder: Path, **fields: Any) -> EngineConfig:
    """fp32 on CPU, Gundam (page sizes change token counts), a short cap; fields override."""
    base = {
        "model": str(folder),
        "mode": "gundam",
        "dtype": "float32",
        "device": "cpu",
        "prune": PruneConfig(method="none"),
        "max_new_tokens": 24,
        "repetition_ngram": 4,
        "repetition_window": 16,
    }
    return EngineConfig(**(base | fields))


def vllm_engine(config: EngineConfig, **settings: Any) -> Any:
    from rtprune.engines.vllm.engine import VllmEngine
    from rtprune.engines.vllm.settings import VllmSettings

    cpu_env()
    fields = {"kv_cache_gib": 1.0, "max_num_seqs": 8, "enforce_eager": True} | settings
    return VllmEngine(config.model_copy(update={"backend": "vllm"}), VllmSettings(**fields))


def hf_engine(config: EngineConfig) -> Any:
    from transformers import AutoTokenizer

    from rtprune.engines.hf.engine import OcrEngine
    from rtprune.models.deepseek_v1 import DeepseekOcrV1Backend

    backend = DeepseekOcrV1Backend.from_pretrained(
        config.model,
        mode=config.mode,
        dtype=torch.float32,
        device="cpu",
        prompt=config.prompt,
        tokenizer=AutoTokenizer.from_pretrained(config.model),
    )
    return OcrEngine(config.model_copy(update={"backend": "hf"}), backend=backend)


def hf_pages(
    engine: Any, images: Sequence[Image.Image], prune: PruneConfig
) -> list[tuple[PageResult, list[int]]]:
    """The transformers engine, one page at a time, with `prune` under the pixel count rule (the rule the
    vLLM path runs): each page's result and the visual indices it kept."""
    from rtprune.engines.vllm.plugin import effective_prune

    out = []
    for image in images:
        pages = engine.prepare([image])
        features, encode_s = engine.encode(pages)
        pruned, prune_s = engine.prune(pages, features, effective_prune(prune))
        result = engine.results(pruned, engine.generate(pruned), encode_s, prune_s)[0]
        out.append((result, pruned[0].kept_index.tolist()))
    return out


def text_page(width_px: int, height_px: int, seed: int) -> Image.Image:
    """A white page with dark text-like bars and a little noise: varied norms, like a document."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width_px, height_px), "white")
    draw = ImageDraw.Draw(image)
    line_px = max(height_px // 30, 4)
    for y in range(line_px, height_px - line_px, 2 * line_px):
        x = int(rng.integers(0, max(width_px // 10, 1)))
        while x < width_px:
            word = int(rng.integers(line_px, 6 * line_px))
            draw.rectangle([x, y, min(x + word, width_px - 1), y + line_px - 1], fill=(20, 20, 20))
            x += word + int(rng.integers(line_px // 2 + 1, 2 * line_px))
    arr = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, (height_px, width_px, 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))
