"""What the vLLM engine reads from a request's output stream besides its text (no vLLM import): the
sampled tokens' log-probabilities, and where the stream loop guard stopped a page.

Log-probabilities: requested with SamplingParams(logprobs=0, flat_logprobs=True), vLLM returns, per
generated position, the sampled token's log-probability only (no top-k list) in one flat float list.
vLLM's default logprobs mode ("raw_logprobs", set explicitly by the engine) takes them from the model's
logits before logits processors, penalties and temperature, in fp32: the transformers engine's meaning.

The stream guard (rtprune.deepseek.stream_guard) watches the ids as they stream and says when the page
loops; the engine then aborts the request. Where it stopped is what the logits-processor guard would have
let through before forcing EOS, so both guards give the page the same text and finish reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rtprune.deepseek.stream_guard import StreamLoopGuard
from rtprune.engines.contract import FinishReason


def sampled_logprobs(token_ids: Sequence[int], logprobs: Any) -> tuple[float, ...]:
    """The sampled token's log-probability at each of the first len(token_ids) positions of a
    completion's `logprobs` (vLLM's FlatLogprobs, or its list of {token id: Logprob} per position); ()
    when the request asked for none (None)."""
    if logprobs is None:
        return ()
    n = len(token_ids)
    starts = getattr(logprobs, "start_indices", None)
    if starts is not None:  # FlatLogprobs: the sampled token comes first at each position
        values = logprobs.logprobs
        return tuple(float(values[i]) for i in starts[:n])
    return tuple(float(position[t].logprob) for position, t in zip(logprobs[:n], token_ids, strict=False))


@dataclass
class StreamWatch:
    """One request's stream guard and how many of its ids it has seen (vLLM streams cumulative ids)."""

    guard: StreamLoopGuard
    seen: int = 0

    def feed(self, token_ids: Sequence[int]) -> bool:
        """The request's ids so far -> True once they loop (the engine aborts the request then)."""
        new = token_ids[self.seen :]
        self.seen = len(token_ids)
        return self.guard.extend(new)

    @property
    def stop_at(self) -> int | None:
        return self.guard.stop_at


def stream_outcome(ids: Sequence[int], eos_token_id: int, stop_at: int | None) -> tuple[int, FinishReason]:
    """(how many of `ids` make the page's text, why it ended) for a request under the stream guard: cut
    where the guard stopped it ("repetition"; ids decoded after that, before the abort took effect, are
    not text), else all of them, "eos" when the model ended the page, "length" at the token cap."""
    if stop_at is not None:
        return min(stop_at, len(ids)), "repetition"
    ended = bool(ids) and ids[-1] == eos_token_id
    return len(ids), "eos" if ended else "length"
