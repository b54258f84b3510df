"""One rule for small and thin pages, shared by both engines through DeepSeek-OCR v1's preprocessing
(rtprune.deepseek.v1_preprocess.fit_page): a side under 16 px is scaled up, a strip longer than 20:1 is
padded to 20:1; no page is refused for its shape. Checked on the rule itself and through the transformers
engine (the vLLM engine's side is tests/vllm/test_engine_parity.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rtprune.deepseek.v1_preprocess import (
    MAX_ASPECT,
    MIN_SIDE_PX,
    MODES,
    PAD_RGB,
    count_tokens,
    fit_page,
    fitted_size,
    token_layout,
)
from rtprune.engines.contract import EngineConfig
from rtprune.engines.hf.engine import OcrEngine

CASES = [
    ((8, 8), (16, 16)),  # a tiny image PDF's page: scaled up, aspect kept
    ((1, 1), (16, 16)),
    ((8, 100), (16, 200)),
    ((2000, 40), (2000, 100)),  # 50:1 -> padded to 20:1
    ((40, 2000), (100, 2000)),
    ((10, 300), (16, 320)),  # padded to 15 x 300, then scaled up to a 16 px side
    ((100_000, 10), (5760, 288)),  # longer than any mode reads: scaled down first, then padded
    ((1191, 1684), (1191, 1684)),  # an A4 page at 144 dpi: as it is
    ((16, 16), (16, 16)),
    ((600, 12000), (600, 12000)),  # exactly 20:1
]


@pytest.mark.parametrize(("size", "fitted"), CASES)
def test_fitted_size(size, fitted):
    assert fitted_size(*size) == fitted
    assert fitted_size(*fitted) == fitted  # the rule is idempotent: fitting twice changes nothing
    w, h = fitted
    assert min(w, h) >= MIN_SIDE_PX and max(w, h) <= MAX_ASPECT * min(w, h)


def test_a_page_without_pixels_is_an_error():
    with pytest.raises(ValueError, match="no pixels"):
        fitted_size(0, 10)


@pytest.mark.parametrize(("size", "fitted"), CASES)
def test_fit_page_makes_the_fitted_size(size, fitted):
    page = Image.new("RGB", size, (10, 20, 30))
    out = fit_page(page)
    assert out.size == fitted
    if fitted == size:
        assert out is page


def test_a_strip_is_padded_centred_in_v1s_pad_colour():
    page = Image.new("RGB", (2000, 40), (0, 0, 0))
    arr = np.asarray(fit_page(page))
    assert arr.shape == (100, 2000, 3)
    assert (arr[:30] == PAD_RGB).all() and (arr[-30:] == PAD_RGB).all()  # 30 px bars above and below
    assert (arr[30:70] == 0).all()  # the page itself, unscaled


@pytest.mark.parametrize("mode", list(MODES))
def test_token_counts_and_layouts_follow_the_fitted_page(mode):
    spec = MODES[mode]
    for size, fitted in CASES:
        assert count_tokens(*size, spec) == count_tokens(*fitted, spec)
        a, b = token_layout(*size, spec), token_layout(*fitted, spec)
        assert torch.equal(a.padding, b.padding) and a.n_tokens == b.n_tokens


def _page(width_px: int, height_px: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height_px, width_px, 3), dtype=np.uint8))


def test_the_transformers_engine_reads_small_and_thin_pages_as_fitted(tiny_v1):
    """The engine prepares a page exactly as its fitted version (same pixels, same layout), and OCRs pages
    that were once refused (vLLM) or broke v1's padding (a 40000 x 2 px sliver)."""
    engine = OcrEngine(EngineConfig(model=tiny_v1.model_id, max_new_tokens=4), backend=tiny_v1)
    pages = [_page(8, 8, 0), _page(8, 100, 1), _page(2000, 40, 2), _page(40000, 2, 3)]
    for page, fitted in zip(engine.prepare(pages), engine.prepare([fit_page(p) for p in pages]), strict=True):
        assert page.model_inputs.keys() == fitted.model_inputs.keys()
        for key, value in page.model_inputs.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(fitted.model_inputs[key])), key
        assert torch.equal(page.layout.padding, fitted.layout.padding)
    results = engine.ocr(pages)
    assert [r.usage.visual_tokens for r in results] == [count_tokens(*p.size, tiny_v1.spec) for p in pages]
    assert all(r.usage.output_tokens > 0 for r in results)
