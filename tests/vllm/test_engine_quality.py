"""The vLLM engine's confidence and its stream loop guard, on the v1 fixture (fp32, Gundam, greedy) with the
repetition logits processor switched off: each page's reported log-probabilities are the model's own for
the tokens it chose (recomputed from the transformers model's logits), and a looping page ends in
`repetition` with the text the logits-processor guard gives."""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402

from rtprune.api import PruneConfig  # noqa: E402
from rtprune.engines.vllm.engine import REPETITION_PROCESSOR  # noqa: E402
from rtprune.engines.vllm.plugin import effective_prune  # noqa: E402
from rtprune.engines.vllm.stream import sampled_logprobs  # noqa: E402
from tests.logprob_reference import recomputed_logprobs  # noqa: E402
from tests.vllm.engine_fixtures import (  # noqa: E402
    FIXTURE,
    engine_config,
    hf_engine,
    model_dir,
    text_page,
    vllm_engine,
)

pytestmark = [
    pytest.mark.slow,  # a vLLM engine start of its own: CI runs it (-m "slow and ci")
    pytest.mark.ci,
    pytest.mark.skipif(not (FIXTURE / "model.safetensors").is_file(), reason=f"no fixture at {FIXTURE}"),
]

SIZES = [(600, 500), (1300, 700), (700, 1400), (640, 640), (640, 640), (640, 640)]
PRUNINGS = {"keep-all": PruneConfig(method="none"), "r0.6": PruneConfig(retention=0.6)}


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return engine_config(model_dir(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="module")
def engines(config):
    with vllm_engine(config, repetition_guard="stream") as vllm:
        yield vllm, hf_engine(config)


@pytest.fixture(scope="module")
def pages():
    return [text_page(w, h, seed=i) for i, (w, h) in enumerate(SIZES)]


def hf_reference(hf, image, prune: PruneConfig) -> tuple[str, str, torch.Tensor, torch.Tensor]:
    """The transformers engine on one page: (text, finish reason, generated ids, (T, V) log-probs
    recomputed from one plain forward pass over prompt and ids)."""
    prepared = hf.prepare([image])
    features, encode_s = hf.encode(prepared)
    pruned, prune_s = hf.prune(prepared, features, effective_prune(prune))
    gen = hf.generate(pruned)
    result = hf.results(pruned, gen, encode_s, prune_s)[0]
    ids = gen.output_ids[0]
    return result.text, result.usage.finish_reason, ids, recomputed_logprobs(hf, pruned[0], ids)


def test_the_logits_processor_is_off(engines):
    vllm, _ = engines
    assert vllm.stream_guard
    assert REPETITION_PROCESSOR not in (vllm._llm.vllm_config.model_config.logits_processors or [])


@pytest.mark.parametrize("name", list(PRUNINGS))
def test_confidence_is_the_models_log_probability_of_each_chosen_token(engines, pages, name):
    vllm, hf = engines
    prune = PRUNINGS[name]
    for page, result in enumerate(vllm.ocr(pages, prune=prune)):
        text, reason, ids, full = hf_reference(hf, pages[page], prune)
        assert (result.text, result.usage.finish_reason) == (text, reason), page  # the same tokens
        n = len(result.token_logprobs)
        # A page the guard stopped: its text ends before the EOS the transformers engine's guard forced.
        assert n == (ids.numel() - 1 if reason == "repetition" else ids.numel()), page
        want = full.gather(1, ids[:, None]).squeeze(1)[:n]
        torch.testing.assert_close(torch.tensor(result.token_logprobs), want, atol=1e-3, rtol=0)


def test_the_stream_guard_ends_looping_pages_in_repetition_like_the_transformers_guard(engines, pages):
    """ngram 4 / window 16 on random weights: some pages loop, so the comparison can fail."""
    vllm, hf = engines
    prune = PRUNINGS["keep-all"]
    got = vllm.ocr(pages, prune=prune)
    want = [hf_reference(hf, page, prune)[:2] for page in pages]
    assert [(r.text, r.usage.finish_reason) for r in got] == want
    assert "repetition" in [r.usage.finish_reason for r in got]
    for result in got:  # the page was paid for up to the abort: at least its text's tokens
        assert result.usage.output_tokens >= len(result.token_logprobs)


def test_sampled_logprobs_reads_both_of_vllms_layouts():
    from vllm.logprobs import FlatLogprobs, Logprob

    positions = [{7: Logprob(-0.5, 1)}, {3: Logprob(-2.0, 4), 9: Logprob(-0.1, 1)}, {5: Logprob(-1.5, 2)}]
    flat = FlatLogprobs()
    flat.extend(positions)
    ids = [7, 3, 5]
    assert sampled_logprobs(ids, positions) == sampled_logprobs(ids, flat) == (-0.5, -2.0, -1.5)
    assert sampled_logprobs(ids[:2], flat) == (-0.5, -2.0)
    assert sampled_logprobs(ids, None) == ()
