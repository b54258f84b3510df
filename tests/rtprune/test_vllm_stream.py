"""The vLLM engine's stream bookkeeping without vLLM: where the stream guard cuts a page and why it ended,
fed the way vLLM streams (cumulative ids, several new ids per step)."""

from __future__ import annotations

import torch

from rtprune.deepseek.repetition import RepetitionGuard
from rtprune.deepseek.stream_guard import StreamLoopGuard
from rtprune.engines.vllm.stream import StreamWatch, stream_outcome

EOS = 1


def guarded_by_processor(ids: list[int], ngram: int, window: int) -> list[int]:
    """What the logits-processor guard lets a greedy decoder produce: ids until it forces EOS."""
    guard, out = RepetitionGuard(0, ngram, window, EOS), []
    for token in ids:
        scores = torch.zeros(1, 16)
        scores[0, token] = 1.0
        out.append(int(guard(torch.tensor([out], dtype=torch.long).reshape(1, -1), scores).argmax()))
        if out[-1] == EOS:
            break
    return out


def test_a_looping_stream_is_cut_where_the_processor_forces_eos():
    ids = [2, 3, 4, 5, 6, 7, 3, 4, 5, 6, 3, 4, 5, 6, 8, 9]
    watch = StreamWatch(StreamLoopGuard(3, 8))
    seen: list[int] = []
    for step in range(0, len(ids), 4):  # cumulative outputs, four new ids per step
        seen = ids[: step + 4]
        if watch.feed(seen):
            break
    n_text, reason = stream_outcome(seen, EOS, watch.stop_at)
    assert reason == "repetition" and len(seen) > n_text  # decoded past the stop before the abort
    assert seen[:n_text] + [EOS] == guarded_by_processor(ids, 3, 8)


def test_pages_that_do_not_loop_end_by_eos_or_at_the_cap():
    assert stream_outcome([2, 3, 4, EOS], EOS, None) == (4, "eos")
    assert stream_outcome([2, 3, 4, 5], EOS, None) == (4, "length")
    assert stream_outcome([], EOS, None) == (0, "length")
    watch = StreamWatch(StreamLoopGuard(3, 8))
    assert not watch.feed([2, 3, 4, 5]) and not watch.feed([2, 3, 4, 5, 6, 7]) and watch.stop_at is None
