"""Pruning inside vLLM against the transformers engine on the same page, fixture weights, fp32.

Both engines run the pixel count rule (PruneConfig.count_from_pixels). vLLM does not hand back which tokens
its model kept, so the check is what they do: the prompt lengths agree (the planned count), the first
step's log-probabilities over the whole vocabulary agree within 1e-4 of the transformers engine's prefill
with ITS kept tokens (a control with one more token kept moves them far past that), and the greedy tokens
are identical. The plugin's prune step on the transformers engine's features selects the very indices the
transformers engine keeps.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rtprune.api import PruneConfig
from tests.vllm.conftest import PROMPT

TOLERANCE = 1e-4
STEPS = 8
# (mode, page size w x h, prune config): each case is one request of a single generate call
CASES = {
    "base-0.84": ("base", (700, 500), PruneConfig(retention=0.84)),
    "large-0.6": ("large", (520, 760), PruneConfig(retention=0.6)),
    "gundam-dynamic": ("gundam", (1000, 700), PruneConfig(retention=0.84, dynamic=True)),
    "tiny-0.6-norm": ("tiny", (600, 800), PruneConfig(method="norm", retention=0.6)),
    "small-keep-all": ("small", (640, 480), PruneConfig(method="none")),
}


def _page(noise_page, size, seed):
    """A noise page, white over its top two thirds: about a third of its cells hold "text" (T near
    density_ref), so the dynamic ratio lands inside its range."""
    img = noise_page(size[0], size[1], seed)
    img.paste((255, 255, 255), (0, 0, size[0], 2 * size[1] // 3))
    return img


def _dense(logprobs: dict, vocab: int) -> torch.Tensor:
    row = torch.full((vocab,), float("nan"), dtype=torch.float64)
    for token, lp in logprobs.items():
        row[token] = lp.logprob
    return row


class HfPage:
    """The transformers engine's path for one page: kept indices, prompt, prefill log-probs, greedy ids."""

    def __init__(self, hf_v1, mode: str, image, prune: PruneConfig) -> None:
        from rtprune.engines.contract import EngineConfig
        from rtprune.engines.hf.engine import OcrEngine
        from rtprune.models.deepseek_v1 import DeepseekOcrV1Backend

        backend = DeepseekOcrV1Backend(
            hf_v1.model, hf_v1.tokenizer, model_id="fixture", mode=mode, prompt=PROMPT
        )
        self.engine = OcrEngine(
            EngineConfig(mode=mode, prompt=PROMPT, prune=prune, max_new_tokens=STEPS), backend=backend
        )
        self.pages = self.engine.prepare([image])
        self.features, _ = self.engine.encode(self.pages)
        self.pruned, _ = self.engine.prune(self.pages, self.features, prune)

    @torch.no_grad()
    def last_logprobs(self, pruned) -> torch.Tensor:
        batch = self.engine.build_prompts(pruned)
        out = self.engine.backend.model(**self.engine._model_inputs(pruned, batch))
        return torch.log_softmax(out.logits[0, -1].double(), dim=-1)

    def greedy(self) -> list[int]:
        return self.engine.generate(self.pruned).output_ids[0].tolist()


@pytest.fixture(scope="module")
def both(v1_llm, hf_v1, noise_page):
    from vllm import SamplingParams

    from rtprune.engines.vllm.plugin import build_request, effective_prune

    images = {name: _page(noise_page, size, seed) for seed, (name, (_, size, _)) in enumerate(CASES.items())}
    requests = [
        build_request(images[name], mode=mode, prune=prune, prompt=PROMPT)
        for name, (mode, _, prune) in CASES.items()
    ]
    params = SamplingParams(temperature=0.0, max_tokens=STEPS, logprobs=1024)
    outs = dict(zip(CASES, v1_llm.generate(requests, params, use_tqdm=False), strict=True))
    hf = {
        name: HfPage(hf_v1, mode, images[name], effective_prune(prune))
        for name, (mode, _, prune) in CASES.items()
    }
    return outs, hf, images


@pytest.mark.parametrize("name", list(CASES))
def test_vllm_keeps_the_planned_count_and_the_transformers_engines_tokens(both, name):
    from rtprune.engines.vllm.plugin import visual_token_counts

    outs, hf, images = both
    mode, size, prune = CASES[name]
    out, page = outs[name], hf[name]
    n_visual, n_kept = visual_token_counts(*size, mode, prune, image=images[name])
    assert page.pruned[0].n_visual == n_visual and page.pruned[0].n_kept == n_kept
    assert (
        page.pages[0].layout.protected[page.pruned[0].kept_index].sum()
        == page.pages[0].layout.protected.sum()
    )
    if prune.method != "none":
        assert n_kept < n_visual
    assert len(out.prompt_token_ids) == page.engine.build_prompts(page.pruned).lengths[0]
    assert out.prompt_token_ids.count(815) == n_kept
    want = page.last_logprobs(page.pruned)
    got = _dense(out.outputs[0].logprobs[0], want.numel())
    assert float((got - want).abs().max() / want.abs().max()) <= TOLERANCE
    assert list(out.outputs[0].token_ids) == page.greedy()


@pytest.mark.parametrize("name", [n for n, case in CASES.items() if case[2].method != "none"])
def test_the_plugins_prune_step_selects_the_transformers_engines_indices(both, name):
    from rtprune.engines.vllm.plugin.page_plan import plan_page, prune_page
    from rtprune.engines.vllm.plugin.requests import page_gray

    _, hf, images = both
    mode, size, prune = CASES[name]
    page = hf[name]
    plan = plan_page(*size, mode, prune, page_gray(images[name], mode))
    _, kept = prune_page(page.features[0], plan, prune)
    assert torch.equal(kept, page.pruned[0].kept_index)


def test_one_more_kept_token_moves_the_logprobs_past_the_tolerance(both):
    """The control for the comparison above: a different kept set is visible in the log-probs."""
    from rtprune.engines.hf.batch import PrunedPage

    outs, hf, _ = both
    page = hf["large-0.6"]
    kept = page.pruned[0].kept_index
    extra = next(i for i in range(page.pruned[0].n_visual) if i not in set(kept.tolist()))
    index = torch.sort(torch.cat([kept, torch.tensor([extra])])).values
    other = PrunedPage(page.features[0][index], index, page.pruned[0].n_visual)
    want = page.last_logprobs([other])
    got = _dense(outs["large-0.6"].outputs[0].logprobs[0], want.numel())
    assert float((got - want).abs().max() / want.abs().max()) > 10 * TOLERANCE


def test_a_bad_page_fails_its_request_and_the_engine_goes_on(v1_llm, noise_page):
    from vllm import SamplingParams

    from rtprune.engines.vllm.plugin import build_request

    params = SamplingParams(temperature=0.0, max_tokens=2)
    bad = build_request(noise_page(640, 640, 0), mode="base", prune=None, prompt=PROMPT)
    bad["mm_processor_kwargs"]["rtprune_mode"] = "huge"
    with pytest.raises(ValueError, match="unknown v1 mode"):
        v1_llm.generate([bad], params, use_tqdm=False)
    good = build_request(noise_page(64, 64, 1), mode="tiny", prune=PruneConfig(retention=0.6), prompt=PROMPT)
    assert len(v1_llm.generate([good], params, use_tqdm=False)[0].outputs[0].token_ids) == 2


def test_retention_outside_its_range_is_refused_before_any_engine_sees_it():
    with pytest.raises(ValueError, match="retention"):
        dataclasses.replace(PruneConfig(), retention=0.0)
