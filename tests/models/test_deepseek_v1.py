"""DeepSeek-OCR v1 adapter: conformance with the original v1 code, strict loading, layouts, preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rtprune.models.base import PreparedPage, TokenLayout
from rtprune.models.deepseek_v1 import DeepseekOcrV1Backend
from rtprune.models.tiny_tokenizer import build_tiny_tokenizer
from rtprune.models.v1_preprocess import MODES, count_tokens

REPO = Path(__file__).resolve().parents[2]
# <repo>/../shared in the main checkout; a git worktree one level deeper sees it at <repo>/../../shared.
_CANDIDATES = [
    base / "shared" / "fixtures" / "deepseek-ocr-v1-tiny" for base in (REPO.parent, REPO.parent.parent)
]
FIXTURE = next((c for c in _CANDIDATES if (c / "model.safetensors").is_file()), _CANDIDATES[0])
needs_fixture = pytest.mark.skipif(
    not (FIXTURE / "model.safetensors").is_file(),
    reason=f"v1 conformance fixture not found at {FIXTURE} (a checkout without ../shared/fixtures)",
)
# mode name in the fixture -> (global view S, crop grid (w, h) or None)
FIXTURE_MODES = {
    "tiny512": (512, None),
    "small640": (640, None),
    "base1024": (1024, None),
    "large1280": (1280, None),
    "gundam1024_w3h2": (1024, (3, 2)),
}
FIXTURE_TO_MODE = {"tiny512": "tiny", "small640": "small", "base1024": "base", "large1280": "large",
                   "gundam1024_w3h2": "gundam"}  # fmt: skip
TOLERANCE = 1e-4


def fixture_view(k: int, size: int) -> torch.Tensor:
    """The fixture README's view k: (3, S, S) float32, computed in float64 as specified."""
    ch = np.arange(3, dtype=np.float64)[:, None, None]
    y = np.arange(size, dtype=np.float64)[None, :, None]
    x = np.arange(size, dtype=np.float64)[None, None, :]
    p = np.sin(0.013 * (x + 1) * (ch + 1) + 0.7 * k) * np.cos(0.007 * (y + 1) * (ch + 2) - 0.3 * k)
    p = p + 0.25 * np.sin(0.0005 * (x + 1) * (y + 1) + ch + k)
    return torch.from_numpy(np.clip(p, -1, 1)).float()


def fixture_inputs(size: int, grid: tuple[int, int] | None) -> dict:
    """One page's model_inputs: the global view (1, 3, S, S), crops (w h, 3, 640, 640) when gridded."""
    inputs = {"pixel_values": fixture_view(0, size)[None]}
    if grid is not None:
        w, h = grid
        views = [fixture_view(1 + r * w + c, 640) for r in range(h) for c in range(w)]
        inputs["pixel_values_local"] = torch.stack(views)  # row-major crops
    return inputs


@torch.no_grad()
def logits_and_greedy(model, input_ids: torch.Tensor, feats: list[torch.Tensor], steps: int = 10):
    """Prefill with precomputed visual features (the engine's path), then steps - 1 cached argmax steps.

    Returns (logits (L, V) of the prefill, the `steps` greedy tokens).
    """
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    mask = torch.ones_like(input_ids)
    encoded = {"image": BaseModelOutputWithPooling(pooler_output=feats)}
    out = model(input_ids=input_ids, attention_mask=mask, use_cache=True, mm_encoder_outputs=encoded)
    logits, cache = out.logits[0], out.past_key_values
    tokens = [int(logits[-1].argmax())]
    for _ in range(steps - 1):
        mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype)], dim=1)
        step = model(
            input_ids=torch.tensor([[tokens[-1]]]), attention_mask=mask, past_key_values=cache, use_cache=True
        )
        cache = step.past_key_values
        tokens.append(int(step.logits[0, -1].argmax()))
    return logits, tokens


@pytest.fixture(scope="module")
def fixture_backend() -> DeepseekOcrV1Backend:
    return DeepseekOcrV1Backend.from_pretrained(str(FIXTURE), tokenizer=build_tiny_tokenizer(1024, 815))


@pytest.fixture(scope="module")
def fixture_refs() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(FIXTURE / "reference.safetensors"))


@needs_fixture
@pytest.mark.parametrize("mode", list(FIXTURE_MODES))
def test_fixture_conformance(mode, fixture_backend, fixture_refs):
    """Logits within 1e-4 (relative to max|ref|) and identical greedy tokens, as the original v1 code."""
    size, grid = FIXTURE_MODES[mode]
    ref = {k.split(".", 1)[1]: v for k, v in fixture_refs.items() if k.startswith(mode + ".")}
    input_ids = ref["input_ids"].long().reshape(1, -1)
    n_img = int((input_ids == fixture_backend.image_token_id).sum())
    w, h = grid or (1, 1)
    # A page of 640w x 640h px gets exactly this crop grid in Gundam; our count must be the fixture's.
    page = (640 * w, 640 * h) if grid else (size, size)
    assert n_img == count_tokens(*page, MODES[FIXTURE_TO_MODE[mode]])
    inputs = fixture_inputs(size, grid)
    if grid is not None:  # PreparedPage holds one page's inputs; encode collates them into lists
        inputs |= {"num_local_patches": grid[0] * grid[1], "patches_grid": list(grid)}
    layout = count_tokens(*page, MODES[FIXTURE_TO_MODE[mode]])
    page_in = PreparedPage(
        inputs, TokenLayout(layout, torch.zeros(layout, dtype=torch.bool)), torch.zeros(1, 1)
    )
    feats = fixture_backend.encode([page_in])
    logits, tokens = logits_and_greedy(fixture_backend.model, input_ids, feats)
    last_ref, at_ref = ref["logits_last"].float(), ref["logits_at"].float()
    err_last = float((logits[-1] - last_ref).abs().max() / last_ref.abs().max())
    err_at = float((logits[ref["positions"].long()] - at_ref).abs().max() / at_ref.abs().max())
    print(f"\n{mode}: rel err logits_last={err_last:.2e} logits_at={err_at:.2e}")
    assert err_last <= TOLERANCE and err_at <= TOLERANCE
    assert tokens == ref["greedy10"].tolist()
