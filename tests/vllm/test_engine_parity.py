"""The vLLM engine against the transformers engine on the v1 fixture (fp32, Gundam, greedy): same tokens
unpruned and pruned, same finish reasons; a page in a batch gives what it gives alone."""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

from rtprune.api import PruneConfig  # noqa: E402
from tests.vllm.engine_fixtures import (  # noqa: E402
    FIXTURE,
    engine_config,
    hf_engine,
    hf_pages,
    model_dir,
    text_page,
    vllm_engine,
)

pytestmark = pytest.mark.skipif(
    not (FIXTURE / "model.safetensors").is_file(), reason=f"no fixture at {FIXTURE}"
)

# Gundam token counts differ with the page's shape: no crops, 2x1 crops, 1x2 crops.
SIZES = [(600, 500), (1300, 700), (700, 1400)]
PRUNINGS = {
    "keep-all": PruneConfig(method="none"),
    "r0.84": PruneConfig(retention=0.84),
    "r0.6": PruneConfig(retention=0.6),
    # capped below 1: these dense test pages would otherwise keep everything
    "dynamic": PruneConfig(dynamic=True, max_retention=0.9),
}


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return engine_config(model_dir(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="module")
def engines(config):
    with vllm_engine(config) as vllm:
        yield vllm, hf_engine(config)


@pytest.fixture(scope="module")
def pages():
    return [text_page(w, h, seed=i) for i, (w, h) in enumerate(SIZES)]


def outcome(result):
    u = result.usage
    return (
        result.text,
        u.output_tokens,
        u.finish_reason,
        u.prompt_tokens,
        u.visual_tokens,
        u.visual_tokens_kept,
    )


@pytest.mark.parametrize("name", list(PRUNINGS))
def test_same_greedy_tokens_as_transformers_engine(engines, pages, name):
    vllm, hf = engines
    prune = PRUNINGS[name]
    got = vllm.ocr(pages, prune=prune)
    want = hf_pages(hf, pages, prune)
    for page, (result, (expected, kept_index)) in enumerate(zip(got, want, strict=True)):
        assert result.usage.visual_tokens_kept == len(kept_index), page
        assert outcome(result) == outcome(expected), f"page {page} ({SIZES[page]}), {name}"
    if name != "keep-all":
        assert any(r.usage.visual_tokens_kept < r.usage.visual_tokens for r in got)


def test_batch_gives_each_page_what_it_gives_alone(engines, pages):
    vllm, _ = engines
    prune = PRUNINGS["r0.6"]
    together = vllm.ocr(pages, prune=prune)
    alone = [vllm.ocr([page], prune=prune)[0] for page in pages]
    assert [outcome(r) for r in together] == [outcome(r) for r in alone]
    assert len({r.usage.prompt_tokens for r in together}) == len(pages)  # really different sizes


def test_finish_reasons_match_and_cover_the_guard(engines, pages):
    """Same reason per page in both engines, and the guard really fires on some page (ngram 4 / window 16
    on random weights), so the comparison can fail."""
    vllm, hf = engines
    prune = PRUNINGS["keep-all"]
    more = pages + [text_page(640, 640, seed=s) for s in range(10, 14)]
    got = [r.usage.finish_reason for r in vllm.ocr(more, prune=prune)]
    want = [r.usage.finish_reason for r, _ in hf_pages(hf, more, prune)]
    assert got == want
    assert "repetition" in got


def test_usage_shares_add_up_to_busy_time(engines, pages):
    """Concurrent pages share the engine's time: the pages' prefill + decode seconds add up to the wall time
    of the call at most, and every page got some of each phase. A page that finishes first is charged for
    its neighbours' remaining decode at their observed rate (VllmEngine._shares), an estimate from the
    engine's own timestamps: the sum may pass the caller's clock by that estimate's error, measured at
    0.3% under a CPU hog, so 2% is allowed."""
    import time

    vllm, _ = engines
    start = time.perf_counter()
    results = vllm.ocr(pages)
    wall_s = time.perf_counter() - start
    total_s = sum(r.usage.prefill_s + r.usage.decode_s for r in results)
    assert 0 < total_s <= wall_s * 1.02
    assert all(r.usage.prefill_s > 0 for r in results)
    assert all(r.usage.encode_s == 0 and r.usage.prune_s == 0 for r in results)


# A tiny image PDF's page, a 1 px page, small pages of either orientation, strips past 20:1, and a sliver
# longer than any mode reads: both engines fit them by one rule (rtprune.deepseek.v1_preprocess.fit_page).
SMALL_AND_THIN = [(8, 8), (1, 1), (8, 100), (100, 8), (2000, 40), (40, 2000), (20000, 1)]


@pytest.mark.parametrize("name", ["keep-all", "r0.6"])
def test_small_and_thin_pages_read_the_same_in_both_engines(engines, name):
    vllm, hf = engines
    prune = PRUNINGS[name]
    pages = [text_page(w, h, seed=20 + i) for i, (w, h) in enumerate(SMALL_AND_THIN)]
    got = vllm.ocr_settled(pages, prune=prune)
    want = hf_pages(hf, pages, prune)
    for size, result, (expected, kept_index) in zip(SMALL_AND_THIN, got, want, strict=True):
        assert type(result).__name__ == "PageResult", (size, result)
        assert result.usage.visual_tokens_kept == len(kept_index), size
        assert outcome(result) == outcome(expected), f"{size}, {name}"


def test_both_engines_keep_the_grounding_tags_of_the_same_ids(engines):
    """The ids of a grounding page (tags are special tokens) through each engine's own output step: the
    same text, tags kept, end-of-sentence and padding gone."""
    from types import SimpleNamespace

    import torch

    from rtprune.engines.hf.batch import PrunedPage
    from rtprune.engines.hf.engine import Generation

    vllm, hf = engines
    page = "<|ref|>title<|/ref|><|det|>[[65, 50, 545, 78]]<|/det|>\n# Title\n\ntext"
    tok = hf.backend.tokenizer
    ids = [*tok.encode(page, add_special_tokens=False), tok.eos_token_id]
    completion = SimpleNamespace(token_ids=ids, logprobs=None)
    final = SimpleNamespace(outputs=[completion], prompt_token_ids=[0] * 3, metrics=None)
    from_vllm = vllm._result(final, 1, 1, None).text  # no stream guard: the whole output is read
    pruned = PrunedPage(torch.zeros(1, 4), torch.tensor([0]), 1)
    from_hf = hf.results([pruned], Generation([torch.tensor(ids)], ["eos"], [3], 0.0, 0.0), 0.0, 0.0)[0].text
    assert from_vllm == from_hf == page
