"""Bad pages fail alone with a clear reason; the pages beside them finish."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("vllm")

from rtprune.api import PruneConfig  # noqa: E402
from rtprune.engines.vllm.pages import PageBatchError, PageError  # noqa: E402
from tests.vllm.engine_fixtures import FIXTURE, engine_config, model_dir, text_page, vllm_engine  # noqa: E402

pytestmark = [
    pytest.mark.slow,  # a vLLM engine start of its own: CI runs it (-m "slow and ci")
    pytest.mark.ci,
    pytest.mark.skipif(not (FIXTURE / "model.safetensors").is_file(), reason=f"no fixture at {FIXTURE}"),
]

MAX_MODEL_LEN = 700  # a 1400 x 1400 Gundam page (3x3 crops, 1203 visual tokens) does not fit


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    config = engine_config(model_dir(tmp_path_factory.mktemp("model")), max_new_tokens=8)
    with vllm_engine(config, max_model_len=MAX_MODEL_LEN) as engine:
        yield engine


def test_each_bad_page_fails_alone(engine):
    """A page past max_model_len fails alone; small and thin pages are read, not refused (the v1 rules
    fit them: rtprune.deepseek.v1_preprocess.fit_page)."""
    good = text_page(600, 500, seed=0)
    # 1 x 600 px: fitted to 30 x 600 (20:1), no Gundam crops, so it fits max_model_len
    pages = [good, text_page(1, 1, seed=1), text_page(1400, 1400, seed=2), text_page(1, 600, seed=3), good]
    results = engine.ocr_settled(pages)
    assert [type(r).__name__ for r in results] == [
        "PageResult",
        "PageResult",
        "PageError",
        "PageResult",
        "PageResult",
    ]
    assert "longer than the maximum model length of 700" in results[2].reason and results[2].stage == "engine"
    assert results[0].text == results[4].text and results[0].usage.output_tokens == 8
    assert all(r.usage.visual_tokens > 0 for r in (results[1], results[3]))


def test_ocr_raises_with_every_pages_outcome(engine):
    pages = [text_page(600, 500, seed=0), text_page(1400, 1400, seed=2)]
    with pytest.raises(PageBatchError) as info:
        engine.ocr(pages)
    assert isinstance(info.value.results[1], PageError)
    assert info.value.results[0].usage.output_tokens == 8


def test_ocr_page_raises_page_error(engine):
    async def one():
        return await engine.ocr_page(text_page(1400, 1400, seed=2))  # from a loop the engine does not own

    with pytest.raises(PageError, match="maximum model length"):
        asyncio.run(one())


def test_retention_never_drops_protected_tokens(engine):
    """The lowest retention keeps every protected token (newlines, separator) plus one; zero is refused
    when the config is made, before any page runs."""
    page = text_page(600, 500, seed=0)
    full = engine.ocr([page], prune=PruneConfig(method="none"))[0].usage
    low = engine.ocr([page], prune=PruneConfig(retention=1e-6))[0].usage
    n_protected = 16 + 1  # a page without crops: the 16 x 16 global grid's newlines and the separator
    assert low.visual_tokens_kept == n_protected + 1 < full.visual_tokens_kept
    with pytest.raises(ValueError, match="retention"):
        PruneConfig(retention=0.0)
