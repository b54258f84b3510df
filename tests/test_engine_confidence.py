"""The transformers engine's confidence on tiny random DeepSeek-OCR v1 and v2 (CPU, fp32): the
log-probability it reports for each generated token is the one a plain forward pass over the prompt and
the generated ids gives that token, for greedy and sampled decoding, in a padded batch."""

from __future__ import annotations

import pytest
import torch

from rtprune.api import PruneConfig
from rtprune.engines.contract import EngineConfig
from rtprune.engines.hf.batch import PrunedPage
from rtprune.engines.hf.engine import OcrEngine
from tests.logprob_reference import recomputed_logprobs

SIZES = [(500, 400), (1000, 500)]  # different prompt lengths: the batch is left-padded
MAX_NEW = 10


@pytest.fixture(scope="module", params=["v1", "v2"])
def engine(request) -> OcrEngine:
    backend = request.getfixturevalue(f"tiny_{request.param}")
    # A guard that never fires within the cap, so every token is the model's own choice.
    config = EngineConfig(
        model=backend.model_id,
        max_new_tokens=MAX_NEW,
        prune=PruneConfig(retention=0.6),
        repetition_ngram=8,
        repetition_window=32,
    )
    return OcrEngine(config, backend=backend)


@pytest.fixture(scope="module")
def pruned(engine, noise_page) -> list[PrunedPage]:
    pages = engine.prepare([noise_page(w, h, seed) for seed, (w, h) in enumerate(SIZES)])
    features, _ = engine.encode(pages)
    return engine.prune(pages, features)[0]


@pytest.mark.parametrize("temperature", [0.0, 1.7])
def test_reported_logprobs_are_the_models_own_for_the_chosen_tokens(engine, pruned, temperature):
    """Sampled at a high temperature, the reported values are still the model's distribution before
    temperature: a processor that read the tempered scores would give other numbers here."""
    gen = engine.generate(pruned, temperature=temperature)
    for page, ids, logprobs in zip(pruned, gen.output_ids, gen.token_logprobs, strict=True):
        assert ids.numel() > 1 and logprobs.shape == ids.shape and logprobs.dtype == torch.float32
        full = recomputed_logprobs(engine, page, ids)
        torch.testing.assert_close(logprobs, full.gather(1, ids[:, None]).squeeze(1), atol=2e-4, rtol=0)
        if temperature == 0.0:  # greedy: every chosen token is the most probable one
            torch.testing.assert_close(logprobs, full.max(dim=1).values, atol=2e-4, rtol=0)
        else:  # sampling really chose tokens other than the most probable one
            assert bool((logprobs < full.max(dim=1).values - 1e-3).any())


def test_page_results_carry_one_logprob_per_output_token(engine, noise_page):
    images = [noise_page(w, h, seed) for seed, (w, h) in enumerate(SIZES)]
    results = engine.ocr(images)
    unpruned = engine.ocr(images, prune=PruneConfig(method="none"))
    for result in results + unpruned:
        assert len(result.token_logprobs) == result.usage.output_tokens > 0
        assert all(isinstance(v, float) and v <= 0 for v in result.token_logprobs)
    # Unpruned decoding reads other features, so its confidence differs: the values are per page and setting.
    assert [r.token_logprobs for r in results] != [r.token_logprobs for r in unpruned]
