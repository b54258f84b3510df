"""The vLLM plugin tests: one engine per session (its start costs 30-50 s on CPU), every mode per request.

Skipped as a whole where vLLM is not installed (the main environment); they run in the CPU build's
environment (docs/vllm.md).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from tests.fixture_pixels import fixture_view

collect_ignore_glob = [] if importlib.util.find_spec("vllm") is not None else ["test_*.py"]

REPO = Path(__file__).resolve().parents[2]
_CANDIDATES = [
    base / "shared" / "fixtures" / "deepseek-ocr-v1-tiny" for base in (REPO.parent, REPO.parent.parent)
]
FIXTURE = next((c for c in _CANDIDATES if (c / "model.safetensors").is_file()), _CANDIDATES[0])
PROMPT = "<image>\nFree OCR."
# fixture mode -> (our mode, global view S, crop grid (w, h) or None)
FIXTURE_MODES = {
    "tiny512": ("tiny", 512, None),
    "small640": ("small", 640, None),
    "base1024": ("base", 1024, None),
    "large1280": ("large", 1280, None),
    "gundam1024_w3h2": ("gundam", 1024, (3, 2)),
}


def fixture_views(name: str) -> dict[str, torch.Tensor]:
    """The fixture's exact pixels as the plugin's pre-processed views (one image)."""
    _, size, grid = FIXTURE_MODES[name]
    w, h = grid or (1, 1)
    crops = [fixture_view(1 + r * w + c, 640) for r in range(h) for c in range(w)] if grid else []
    return {
        "pixel_values": fixture_view(0, size)[None],
        "images_crop": torch.stack(crops) if crops else torch.zeros((0, 3, 640, 640)),
        "images_spatial_crop": torch.tensor([[w, h]]),
    }


needs_fixture = pytest.mark.skipif(
    not (FIXTURE / "model.safetensors").is_file(), reason=f"v1 conformance fixture not found at {FIXTURE}"
)


@pytest.fixture(scope="session")
def v1_model_dir(tmp_path_factory) -> Path:
    if not (FIXTURE / "model.safetensors").is_file():
        pytest.skip(f"v1 conformance fixture not found at {FIXTURE}")
    from rtprune.engines.vllm.plugin.fixture import prepare_model_dir

    return prepare_model_dir(FIXTURE, tmp_path_factory.mktemp("v1-vllm"))


@pytest.fixture(scope="session")
def v1_llm(v1_model_dir):
    """One fp32 engine over the fixture, default mode base; tests pick modes and pruning per request.

    Engine core and worker run in this process (no multiprocessing, "uni" executor): each spawned vLLM
    process re-imports vLLM, which costs more than the engine's own start; the plugin still loads through
    its entry point.
    """
    for key, value in {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "OMP_NUM_THREADS": "2",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    }.items():
        os.environ.setdefault(key, value)
    from vllm import LLM

    from rtprune.engines.vllm.plugin import engine_kwargs

    llm = LLM(
        **engine_kwargs(
            v1_model_dir,
            "base",
            dtype="float32",
            accept_views=True,
            max_model_len=2048,
            max_num_seqs=8,
            seed=0,
            max_logprobs=1024,
            enforce_eager=True,
            distributed_executor_backend="uni",
        )
    )
    yield llm
    del llm


@pytest.fixture(scope="session")
def hf_v1(v1_model_dir):
    """The transformers engine's v1 backend over the same folder (fp32), mode set per test."""
    from transformers import AutoTokenizer

    from rtprune.models.deepseek_v1 import DeepseekOcrV1Backend

    tok = AutoTokenizer.from_pretrained(str(v1_model_dir))
    return DeepseekOcrV1Backend.from_pretrained(str(v1_model_dir), mode="base", tokenizer=tok, prompt=PROMPT)
