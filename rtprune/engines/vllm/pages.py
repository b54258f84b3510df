"""Pure bookkeeping of the vLLM engine (no vLLM import): per-page errors, finish reasons, and
how the engine's busy time is shared among the pages that ran together.

Phase seconds: vLLM reports each request's own timeline on the engine core's clock (RequestStateStats:
scheduled -> first token -> last token). Pages run concurrently, so those intervals overlap and their sum
overstates the engine's time by the mean concurrency. `share_busy_time` turns them into shares that add up
to the engine's busy time, as the transformers engine's per-page shares add up to its batch seconds: at each
instant every running request gets a part in proportion to its token rate in its current phase (prompt
tokens over its prefill interval while prefilling, output tokens over its decode interval while decoding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rtprune.deepseek.repetition import repeats_in_window
from rtprune.engines.contract import FinishReason


class PageError(Exception):
    """One page could not be OCR'd; the other pages of its call are unaffected.

    stage: where it failed ("input": refused before the model; "engine": vLLM rejected or failed it).
    """

    def __init__(self, reason: str, stage: str = "engine") -> None:
        super().__init__(reason)
        self.reason, self.stage = reason, stage


class EngineDied(RuntimeError):
    """vLLM's engine is gone (its engine core process died: a crash, out of memory, killed): no page's
    fault. Every page in flight fails with it and the engine cannot serve again; the caller closes it and
    redoes those pages on a new engine (they are not error rows)."""


class PageBatchError(Exception):
    """Some pages of an `ocr` call failed. `results` holds every page in order: a PageResult for the pages
    that finished, the PageError for the ones that did not, so a caller can keep the finished pages instead
    of running them again."""

    def __init__(self, results: list) -> None:
        failed = [(i, r) for i, r in enumerate(results) if isinstance(r, PageError)]
        detail = "; ".join(f"page {i}: {e.reason}" for i, e in failed[:3])
        super().__init__(f"{len(failed)} of {len(results)} pages failed: {detail}")
        self.results = results


def finish_reason(
    output_ids: Sequence[int], eos_token_id: int, ngram: int, window: int, whitelist: frozenset[int]
) -> FinishReason:
    """Why generation ended. The repetition guard forces EOS at the first step where the ids so far repeat
    (rtprune.deepseek.repetition), so an output ends by the guard exactly when it ends in EOS and the ids
    before that EOS repeat; any other EOS is the model's own; no EOS means the token cap."""
    if not output_ids or output_ids[-1] != eos_token_id:
        return "length"
    before = torch.tensor(list(output_ids[:-1]), dtype=torch.long)
    return "repetition" if repeats_in_window(before, ngram, window, whitelist) else "eos"


@dataclass(frozen=True)
class Timeline:
    """One request on the engine core's clock (seconds): scheduled, first token, last token; its work."""

    scheduled_s: float
    first_token_s: float
    last_token_s: float
    prompt_tokens: int
    output_tokens: int

    def rate(self, t: float) -> float:
        """Tokens per second this request processes at time t (0 outside its lifetime)."""
        if self.scheduled_s <= t < self.first_token_s:
            return self.prompt_tokens / (self.first_token_s - self.scheduled_s)
        if self.first_token_s <= t < self.last_token_s:
            return max(self.output_tokens - 1, 1) / (self.last_token_s - self.first_token_s)
        return 0.0


def share_busy_time(own: Timeline, others: Sequence[Timeline]) -> tuple[float, float]:
    """(prefill_s, decode_s): `own`'s share of the engine's time over its lifetime, given the requests that
    ran beside it (those outside its lifetime do not matter). With no one beside it, its own intervals."""
    edges = {own.scheduled_s, own.first_token_s, own.last_token_s}
    for other in others:
        edges.update(
            t
            for t in (other.scheduled_s, other.first_token_s, other.last_token_s)
            if own.scheduled_s < t < own.last_token_s
        )
    points = sorted(edges)
    prefill_s = decode_s = 0.0
    for start, end in zip(points[:-1], points[1:], strict=True):
        mid = (start + end) / 2
        mine = own.rate(mid)
        total = mine + sum(o.rate(mid) for o in others)
        part = (end - start) * (mine / total if total > 0 else 0.0)
        if mid < own.first_token_s:
            prefill_s += part
        else:
            decode_s += part
    return prefill_s, decode_s
