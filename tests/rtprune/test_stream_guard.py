"""StreamLoopGuard stops a stream exactly where repeats_in_window first says the ids so far repeat."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rtprune.deepseek.repetition import repeats_in_window
from rtprune.deepseek.stream_guard import StreamLoopGuard


def first_repeat(ids: list[int], ngram: int, window: int, whitelist: frozenset[int]) -> int | None:
    """The reference: the shortest prefix length at which the engines' guards would force EOS."""
    for length in range(1, len(ids) + 1):
        prefix = torch.tensor(ids[:length], dtype=torch.long)
        if repeats_in_window(prefix, ngram, window, whitelist):
            return length
    return None


def pushed_one_by_one(ids: list[int], guard: StreamLoopGuard) -> list[bool]:
    return [guard.push(t) for t in ids]


@st.composite
def guard_settings(draw):
    ngram = draw(st.integers(1, 6))
    window = draw(st.integers(ngram + 1, ngram + 24))
    whitelist = frozenset(draw(st.sets(st.integers(0, 5), max_size=3)))
    return ngram, window, whitelist


@st.composite
def looping_streams(draw):
    """A prefix of any ids, a cycle repeated, then more ids: loops of every length, some outside the
    window, some of whitelisted ids only."""
    prefix = draw(st.lists(st.integers(0, 40), max_size=40))
    cycle = draw(st.lists(st.integers(0, 8), min_size=1, max_size=12))
    repeats = draw(st.integers(1, 6))
    suffix = draw(st.lists(st.integers(0, 40), max_size=20))
    return prefix + cycle * repeats + suffix


@settings(max_examples=200, deadline=None)
@given(settings_=guard_settings(), ids=st.lists(st.integers(0, 7), max_size=120))
def test_agrees_with_repeats_in_window_on_random_streams(settings_, ids):
    ngram, window, whitelist = settings_
    expected = first_repeat(ids, ngram, window, whitelist)
    guard = StreamLoopGuard(ngram, window, whitelist)
    said = pushed_one_by_one(ids, guard)
    assert guard.stop_at == expected
    stop = len(ids) if expected is None else expected - 1
    assert said == [False] * stop + [True] * (len(ids) - stop)


@settings(max_examples=200, deadline=None)
@given(settings_=guard_settings(), ids=looping_streams())
def test_agrees_with_repeats_in_window_on_looping_streams(settings_, ids):
    ngram, window, whitelist = settings_
    guard = StreamLoopGuard(ngram, window, whitelist)
    pushed_one_by_one(ids, guard)
    assert guard.stop_at == first_repeat(ids, ngram, window, whitelist)


@settings(max_examples=100, deadline=None)
@given(settings_=guard_settings(), ids=looping_streams(), cuts=st.lists(st.integers(0, 200), max_size=8))
def test_deltas_of_any_size_stop_at_the_same_token(settings_, ids, cuts):
    ngram, window, whitelist = settings_
    bounds = sorted({0, len(ids), *(c for c in cuts if c < len(ids))})
    guard = StreamLoopGuard(ngram, window, whitelist)
    said = [guard.extend(ids[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    expected = first_repeat(ids, ngram, window, whitelist)
    assert guard.stop_at == expected
    assert guard.stopped == (expected is not None) == any(said)


def test_a_long_stream_without_loops_never_stops_and_a_late_loop_still_does():
    ngram, window = 30, 90  # the engines' defaults
    fresh = list(range(100, 10_100))  # 10k distinct ids: the index must forget what left the window
    guard = StreamLoopGuard(ngram, window)
    assert not guard.extend(fresh)
    loop = list(range(7, 7 + 40)) * 3
    assert guard.extend(loop)
    assert guard.stop_at == len(fresh) + 40 + ngram  # the first n-gram of the loop's second pass


def test_ids_after_the_stop_are_ignored():
    guard = StreamLoopGuard(ngram=2, window=8)
    assert pushed_one_by_one([3, 4, 3, 4, 5, 6], guard) == [False, False, False, True, True, True]
    assert guard.stop_at == 4


def test_whitelisted_table_cells_do_not_stop_a_stream():
    cells = [40, 41] * 50
    assert not StreamLoopGuard(4, 20, frozenset({40, 41})).extend(cells)
    assert StreamLoopGuard(4, 20, frozenset()).extend(cells)


@pytest.mark.parametrize(("ngram", "window"), [(0, 5), (4, 4), (5, 3)])
def test_settings_the_rule_cannot_use_are_refused(ngram, window):
    with pytest.raises(ValueError, match="ngram"):
        StreamLoopGuard(ngram, window)
