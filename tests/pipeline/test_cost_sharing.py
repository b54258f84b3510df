"""Cost sharing under continuous batching: every page's share of the engine's busy time, adding up."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.stages.gpu_share import (
    PHASES,
    BusyClock,
    PhaseWork,
    busy_seconds,
    share_intervals,
    split_phases,
)


def test_a_page_alone_pays_its_own_wall_time():
    assert share_intervals([(2.0, 5.0)]) == [pytest.approx(3.0)]


def test_pages_in_flight_together_split_the_time_equally():
    assert share_intervals([(0.0, 4.0), (0.0, 4.0)]) == [pytest.approx(2.0), pytest.approx(2.0)]


def test_partial_overlap_each_second_is_shared_by_the_pages_in_it():
    # [0,2) only A: A 2; [2,4) A and B: 1 each; [4,10) only B: B 6.
    a, b = share_intervals([(0.0, 4.0), (2.0, 10.0)])
    assert (a, b) == (pytest.approx(3.0), pytest.approx(7.0))


def test_idle_gaps_are_charged_to_nobody():
    intervals = [(0.0, 1.0), (5.0, 6.5)]
    assert share_intervals(intervals) == [pytest.approx(1.0), pytest.approx(1.5)]
    assert busy_seconds(intervals) == pytest.approx(2.5)


def test_a_longer_page_pays_more_than_a_short_one_beside_it():
    short, long_ = share_intervals([(0.0, 1.0), (0.0, 8.0)])
    assert long_ > 7 * short


def test_zero_length_and_touching_intervals():
    assert share_intervals([(1.0, 1.0), (0.0, 1.0), (1.0, 3.0)]) == [
        0.0,
        pytest.approx(1.0),
        pytest.approx(2.0),
    ]


intervals_st = st.lists(
    st.tuples(st.floats(0, 100, allow_nan=False), st.floats(0, 50, allow_nan=False)).map(
        lambda p: (p[0], p[0] + p[1])
    ),
    min_size=1,
    max_size=40,
)


@given(intervals_st)
def test_shares_add_up_to_the_busy_time(intervals):
    shares = share_intervals(intervals)
    assert all(s >= -1e-9 for s in shares)
    assert sum(shares) == pytest.approx(busy_seconds(intervals), rel=1e-9, abs=1e-9)
    for (s, e), share in zip(intervals, shares, strict=True):  # never more than its own wall time
        assert share <= (e - s) + 1e-9


def test_the_live_meter_adds_up_to_measured_busy_time_with_real_concurrency():
    """Real coroutines overlapping on the real monotonic clock, with an idle gap in between."""
    clock = BusyClock()

    async def page(delay_s: float, hold_s: float) -> float:
        await asyncio.sleep(delay_s)
        token = clock.start()
        await asyncio.sleep(hold_s)
        return clock.finish(token)

    async def run() -> list[float]:
        first = await asyncio.gather(page(0, 0.05), page(0.01, 0.08), page(0.02, 0.03))
        await asyncio.sleep(0.05)  # idle: nobody in flight
        return list(first) + list(await asyncio.gather(page(0, 0.04), page(0, 0.04)))

    t0 = time.monotonic()
    shares = asyncio.run(run())
    wall_s = time.monotonic() - t0
    assert clock.in_flight == 0
    assert sum(shares) == pytest.approx(clock.busy_s, rel=1e-12) == pytest.approx(clock.charged_s, rel=1e-12)
    assert 0.12 <= clock.busy_s < wall_s - 0.04  # the idle gap is not in it
    assert shares[3] == pytest.approx(shares[4], rel=0.2)  # same work side by side, same share


def test_finish_without_start_is_a_bug():
    with pytest.raises(RuntimeError):
        BusyClock().finish(0.0)


def test_phases_follow_the_engines_own_timings_and_add_up():
    parts = split_phases(
        3.0, PhaseWork(encode_s=1.0, prune_s=0.0, prefill_s=1.0, decode_s=2.0, prompt_tokens=9)
    )
    assert parts == {
        "encode_s": pytest.approx(0.75),
        "prune_s": 0.0,
        "prefill_s": pytest.approx(0.75),
        "decode_s": pytest.approx(1.5),
    }
    assert sum(parts.values()) == 3.0


def test_phases_fall_back_to_tokens_then_to_decode():
    parts = split_phases(2.0, PhaseWork(prompt_tokens=300, output_tokens=100))
    assert (parts["prefill_s"], parts["decode_s"]) == (pytest.approx(1.5), pytest.approx(0.5))
    assert split_phases(2.0, PhaseWork()) == dict.fromkeys(PHASES[:3], 0.0) | {"decode_s": 2.0}


@given(
    st.floats(0, 1e4, allow_nan=False),
    st.lists(st.floats(0, 10, allow_nan=False), min_size=4, max_size=4),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
)
def test_phases_always_add_up_to_the_share(share, times, prompt, output):
    parts = split_phases(share, PhaseWork(*times, prompt_tokens=prompt, output_tokens=output))
    assert set(parts) == set(PHASES) and all(v >= -1e-9 * max(1.0, share) for v in parts.values())
    assert sum(parts.values()) == pytest.approx(share, rel=1e-12, abs=1e-12)
