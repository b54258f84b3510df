"""The v1 fixture through vLLM with the plugin, no pruning: the original code's numbers in all five modes.

vLLM gives log-probabilities, not logits, so the reference logits are compared as log_softmax: over the full
1024-token vocabulary (prompt_logprobs / logprobs = 1024) at the fixture's 8 positions, relative error
max|lp - log_softmax(ref)| / max|log_softmax(ref)| <= 1e-4; and the 10 greedy tokens (no EOS stop) equal.
"""

from __future__ import annotations

import pytest
import torch

from tests.vllm.conftest import FIXTURE, FIXTURE_MODES, fixture_views

TOLERANCE = 1e-4
PROMPT_IDS_AFTER_IMAGE = [201, 17, 934, 5, 1000, 77]


def _reference():
    from safetensors.torch import load_file

    return load_file(str(FIXTURE / "reference.safetensors"))


def _dense(logprobs: dict, vocab: int) -> torch.Tensor:
    row = torch.full((vocab,), float("nan"), dtype=torch.float64)
    for token, lp in logprobs.items():
        row[token] = lp.logprob
    return row


@pytest.fixture(scope="module")
def fixture_outputs(v1_llm, v1_model_dir):
    """All five modes in one generate call: each request carries its own views (and so its mode)."""
    import json

    from vllm import SamplingParams

    image_token_id = json.loads((v1_model_dir / "config.json").read_text())["image_token_id"]
    requests = [
        {
            "prompt_token_ids": [0, image_token_id] + PROMPT_IDS_AFTER_IMAGE,
            "multi_modal_data": {"image": fixture_views(name)},
        }
        for name in FIXTURE_MODES
    ]
    params = SamplingParams(
        temperature=0.0, max_tokens=10, ignore_eos=True, logprobs=1024, prompt_logprobs=1024
    )
    outs = v1_llm.generate(requests, params, use_tqdm=False)
    return dict(zip(FIXTURE_MODES, outs, strict=True))


@pytest.mark.parametrize("name", list(FIXTURE_MODES))
def test_unpruned_modes_reproduce_the_original_code(fixture_outputs, name):
    ref = _reference()
    out = fixture_outputs[name]
    n_image = int((ref[f"{name}.input_ids"].flatten() == 815).sum())
    assert out.prompt_token_ids == ref[f"{name}.input_ids"].flatten().tolist()
    assert len(out.prompt_token_ids) == n_image + 7
    vocab = ref[f"{name}.logits_last"].numel()
    seq_len = len(out.prompt_token_ids)
    rows = []
    for p in ref[f"{name}.positions"].tolist():  # logits at p predict token p + 1
        lp = out.prompt_logprobs[p + 1] if p + 1 < seq_len else out.outputs[0].logprobs[0]
        rows.append(_dense(lp, vocab))
    got = torch.stack(rows)
    want = torch.log_softmax(ref[f"{name}.logits_at"].double(), dim=-1)
    assert not torch.isnan(got).any(), "vLLM returned fewer than the whole vocabulary"
    rel = float((got - want).abs().max() / want.abs().max())
    assert rel <= TOLERANCE, f"{name}: relative log-prob error {rel:.2e}"
    last = _dense(out.outputs[0].logprobs[0], vocab)
    want_last = torch.log_softmax(ref[f"{name}.logits_last"].double(), dim=-1)
    assert float((last - want_last).abs().max() / want_last.abs().max()) <= TOLERANCE
    assert list(out.outputs[0].token_ids) == ref[f"{name}.greedy10"].tolist()


def test_a_deliberate_layout_error_fails_the_comparison(v1_llm):
    """The check can fail: the gundam crops fed column-major move the log-probs far past the tolerance."""
    from vllm import SamplingParams

    name = "gundam1024_w3h2"
    views = fixture_views(name)
    w, h = 3, 2
    crops = views["images_crop"].view(h, w, 3, 640, 640).transpose(0, 1).reshape(-1, 3, 640, 640)
    views = views | {"images_crop": crops.contiguous()}
    req = {"prompt_token_ids": [0, 815] + PROMPT_IDS_AFTER_IMAGE, "multi_modal_data": {"image": views}}
    out = v1_llm.generate(
        [req], SamplingParams(temperature=0.0, max_tokens=1, logprobs=1024), use_tqdm=False
    )[0]
    ref = _reference()
    want = torch.log_softmax(ref[f"{name}.logits_last"].double(), dim=-1)
    got = _dense(out.outputs[0].logprobs[0], want.numel())
    assert float((got - want).abs().max() / want.abs().max()) > 10 * TOLERANCE
