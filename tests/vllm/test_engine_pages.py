"""The vLLM engine's pure bookkeeping: finish reasons, shares of the engine's busy time."""

from __future__ import annotations

import pytest
import torch

from rtprune.deepseek.repetition import RepetitionGuard
from rtprune.engines.vllm.pages import Timeline, finish_reason, share_busy_time

EOS = 1


def guard_reason(ids: list[int], ngram: int, window: int, whitelist: frozenset[int]) -> str:
    """The transformers engine's guard run step by step over `ids` (greedy choices given): where it forces
    EOS, generation ends there."""
    out: list[int] = []
    guard = RepetitionGuard(0, ngram, window, EOS, whitelist)
    for token in ids:
        scores = torch.zeros(1, 8)
        scores[0, token] = 1.0
        scores = guard(torch.tensor([out], dtype=torch.long).reshape(1, -1), scores)
        out.append(int(scores.argmax()))
        if out[-1] == EOS:
            return "repetition" if guard.stopped else "eos"
    return "length"


@pytest.mark.parametrize(
    "ids",
    [
        [2, 3, 4, 2, 3, 4, 2, 3],  # loops: the guard ends it
        [2, 3, 4, 5, 6, EOS],  # the model's own EOS
        [2, 3, 4, 5, 6, 7],  # runs to the cap
        [5, 6, 5, 6, 5, 6, 5],  # whitelisted ids loop freely
        [2, 2, 2, 2, 2],
    ],
)
def test_finish_reason_agrees_with_the_transformers_guard(ids):
    ngram, window, whitelist = 2, 6, frozenset({5, 6})
    want = guard_reason(ids, ngram, window, whitelist)
    # what vLLM returns: the ids up to the step where the guard forced EOS (or all of them)
    got_ids: list[int] = []
    for token in ids:
        forced = finish_reason(got_ids + [EOS], EOS, ngram, window, whitelist) == "repetition"
        got_ids.append(EOS if forced else token)
        if got_ids[-1] == EOS:
            break
    assert finish_reason(got_ids, EOS, ngram, window, whitelist) == want


def test_alone_a_request_gets_its_own_intervals():
    own = Timeline(1.0, 3.0, 7.0, prompt_tokens=300, output_tokens=41)
    assert share_busy_time(own, []) == pytest.approx((2.0, 4.0))


def test_shares_of_concurrent_requests_add_up_to_busy_time():
    a = Timeline(0.0, 1.0, 5.0, prompt_tokens=100, output_tokens=41)
    b = Timeline(0.5, 2.0, 9.0, prompt_tokens=300, output_tokens=71)
    c = Timeline(6.0, 6.5, 8.0, prompt_tokens=50, output_tokens=16)
    timelines = [a, b, c]
    shares = [share_busy_time(t, [o for o in timelines if o is not t]) for t in timelines]
    assert sum(p + d for p, d in shares) == pytest.approx(9.0)  # busy from 0 to 9 without a gap
    # a decodes at 10 tokens/s from 1 to 5: beside b's prefill (200 tokens/s) over [1, 2] it gets 10/210 of
    # that second, beside b's decode (10 tokens/s) over [2, 5] half of those three
    assert shares[0][1] == pytest.approx(10 / 210 + 1.5)
    assert all(p > 0 and d > 0 for p, d in shares)


def test_prefilling_request_takes_the_larger_share_of_a_shared_step():
    decoding = Timeline(0.0, 0.1, 2.0, prompt_tokens=10, output_tokens=20)  # 10 tokens/s
    prefilling = Timeline(1.0, 2.0, 2.0, prompt_tokens=990, output_tokens=1)  # 990 tokens/s
    prefill_s, decode_s = share_busy_time(prefilling, [decoding])
    assert decode_s == 0
    assert prefill_s == pytest.approx(990 / 1000)


def test_the_reported_prune_hash_is_that_of_the_rule_the_plugin_runs():
    """The plugin prunes under the pixel count rule, so output rows (and the ledger) must not mistake a
    vLLM run of a dynamic setting for a transformers run of the same setting."""
    from types import SimpleNamespace

    from rtprune.api import PruneConfig
    from rtprune.engines.contract import EngineConfig
    from rtprune.engines.vllm.engine import VllmEngine

    def reported(prune: PruneConfig) -> str:
        return VllmEngine.identity.fget(SimpleNamespace(config=EngineConfig(prune=prune))).prune_config_hash

    dynamic = PruneConfig(dynamic=True)
    assert reported(dynamic) != dynamic.config_hash()
    pixel_rule = PruneConfig(dynamic=True, count_from_pixels=True)
    assert reported(dynamic) == reported(pixel_rule) == pixel_rule.config_hash()
