"""Per-page GPU seconds under continuous batching: how an engine's busy time is shared among its pages.

With static batches a page owned a share of its batch's seconds. A vLLM engine has no batches: pages join
and leave its running set at every step. What the GPU really spends is the engine's *busy time*: the wall
time during which at least one page was in flight. We share it by processor sharing: at every moment the
busy second is split equally among the pages in flight. vLLM's scheduler does the same thing at step level
(every running sequence advances by one token per decode step), so a page that stays in flight longer
(more output tokens, a longer prefill) pays for more steps, and a page alone on the engine pays for all of
the time it took. The shares of all pages add up to the busy time exactly, idle gaps are charged to nobody,
and each page's share is final the moment it finishes (nothing has to wait for later pages).

A page's share is then split into the schema's phases (encode/prune/prefill/decode) in proportion to the
engine's own per-page phase timings, or, when the engine reports none, prefill by prompt tokens and decode
by output tokens.

`page_seconds` is the one rule both OCR stages charge a page by: the static-batch stage passes no share (the
engine already split each batch's measured seconds among its pages), the vLLM stage passes the page's share
of busy time; either way gpu_s is the sum of the phase columns.

The meter counts pages *in flight at the engine*: a page waiting in the engine's queue would be charged for
time it does not use, so the stage admits at most as many pages as the engine runs at once
(`pools.ocr_vllm.max_num_seqs`). No torch, no Ray: unit-tested alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rtprune.engines.contract import PageUsage

PHASES = ("encode_s", "prune_s", "prefill_s", "decode_s")


class BusyClock:
    """Processor-sharing meter of one engine. `start()` when a page enters the engine, `finish(token)` when
    it leaves: the seconds returned are the page's share of the engine's busy time.

    A virtual clock V advances by dt / n while n > 0 pages are in flight; a page's share is V(finish) -
    V(start). Every busy interval dt is thereby handed out n times dt / n, so the shares add up to the busy
    time. O(1) per event."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._last: float | None = None
        self._virtual_s = 0.0
        self._in_flight = 0
        self.busy_s = 0.0  # wall seconds with at least one page in flight, so far
        self.charged_s = 0.0  # shares handed out to finished pages, so far
        self.peak_in_flight = 0  # most pages in flight at once, so far

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _advance(self, t: float | None) -> None:
        t = self._now() if t is None else t
        if self._in_flight and self._last is not None:
            dt = max(0.0, t - self._last)  # a monotonic clock; max() guards a non-monotonic one
            self._virtual_s += dt / self._in_flight
            self.busy_s += dt
        self._last = t

    def start(self, t: float | None = None) -> float:
        """A page enters the engine (now, or at time t); returns its token for finish()."""
        self._advance(t)
        self._in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        return self._virtual_s

    def finish(self, token: float, t: float | None = None) -> float:
        """The page that got `token` left the engine (done or failed); returns its share in seconds."""
        if self._in_flight <= 0:
            raise RuntimeError("finish() without a page in flight")
        self._advance(t)
        self._in_flight -= 1
        share = self._virtual_s - token
        self.charged_s += share
        return share


def share_intervals(intervals: Sequence[tuple[float, float]]) -> list[float]:
    """Offline form of BusyClock: each (start, end) interval's share of the busy time. The reference the
    meter is tested against, and what a cost report can recompute from stored timestamps."""
    # At equal times: ends of earlier pages, then starts, then ends of zero-length pages.
    events = sorted(
        [(s, 1, i) for i, (s, _) in enumerate(intervals)]
        + [(e, 0 if s < e else 2, i) for i, (s, e) in enumerate(intervals)]
    )
    clock = BusyClock()
    tokens: dict[int, float] = {}
    shares = [0.0] * len(intervals)
    for t, kind, i in events:
        if kind == 1:
            tokens[i] = clock.start(t)
        else:
            shares[i] = clock.finish(tokens.pop(i), t)
    return shares


def busy_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """Length of the union of the intervals: the wall time with at least one page in flight."""
    total, end = 0.0, float("-inf")
    for s, e in sorted(intervals):
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


@dataclass(frozen=True)
class PhaseWork:
    """What the engine reported for one page, used only as proportions for splitting its share."""

    encode_s: float = 0.0
    prune_s: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    prompt_tokens: int = 0
    output_tokens: int = 0


def split_phases(share_s: float, work: PhaseWork) -> dict[str, float]:
    """share_s as {encode_s, prune_s, prefill_s, decode_s}, adding up to share_s exactly (the last phase
    takes the rounding remainder). Proportions: the engine's phase seconds when it measured any, else
    prompt tokens for prefill and output tokens for decode, else all decode."""
    weights = [max(0.0, getattr(work, p)) for p in PHASES]
    if sum(weights) <= 0:
        weights = [0.0, 0.0, float(max(0, work.prompt_tokens)), float(max(0, work.output_tokens))]
    if sum(weights) <= 0:
        weights = [0.0, 0.0, 0.0, 1.0]
    total = sum(weights)
    parts = [share_s * w / total for w in weights]
    parts[-1] = share_s - sum(parts[:-1])
    return dict(zip(PHASES, parts, strict=True))


def page_seconds(usage: PageUsage, share_s: float | None = None) -> dict[str, float]:
    """A page's GPU seconds as row columns: the four phases and gpu_s, their sum. share_s None: the engine's
    own per-page phase seconds (static batches: its share of the batch, split by the engine). Otherwise
    share_s (its share of the engine's busy time), split by split_phases in proportion to the usage."""
    if share_s is None:
        return {**{p: getattr(usage, p) for p in PHASES}, "gpu_s": usage.gpu_s}
    u = usage
    work = PhaseWork(u.encode_s, u.prune_s, u.prefill_s, u.decode_s, u.prompt_tokens, u.output_tokens)
    phases = split_phases(share_s, work)
    return {**phases, "gpu_s": sum(phases.values())}
