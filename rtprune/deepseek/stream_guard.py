"""The repetition guard for a token stream: fed the generated ids as they arrive, it says when to stop.

Its rule is `repeats_in_window`'s (rtprune.deepseek.repetition), so a stream it stops ends for the same
reason, and at the same token, as the engines' guards: the finish reason is "repetition". It needs no
engine internals, only the ids: a caller that streams (vLLM's token deltas, a server relaying pages) can
stop a looping request itself.

Asking `repeats_in_window` at every token costs O(window * ngram) of tensor work per token. Instead an
index remembers, for each n-gram of the last `window` ids, where it last started, so a token costs one
n-gram lookup (O(ngram)). The index only says when a repeat is possible; `repeats_in_window` is asked then,
and its answer is the decision: it is asked once per stream that stops, and never for one that does not.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import torch

from rtprune.deepseek.repetition import repeats_in_window


class StreamLoopGuard:
    """Stateful guard over one stream of generated ids (prompt ids excluded).

    push(id) -> True from the token on which the last `ngram` ids already occur as an earlier n-gram
    within the last `window` ids (an n-gram of whitelisted ids only never counts); `stop_at` is then the
    number of ids that stream had, so ids[:stop_at] is what the engines' guards would have let through
    before forcing EOS. Ids pushed after the stop are ignored.
    """

    def __init__(self, ngram: int, window: int, whitelist: frozenset[int] = frozenset()) -> None:
        if ngram < 1 or window < ngram + 1:
            raise ValueError(f"need 1 <= ngram < window, got ngram={ngram}, window={window}")
        self.ngram, self.window, self.whitelist = ngram, window, whitelist
        self.stop_at: int | None = None
        self._seen = 0  # ids pushed so far
        self._recent: deque[int] = deque(maxlen=window)
        self._tail: deque[int] = deque(maxlen=ngram)
        self._tail_whitelisted = 0  # how many of the tail's ids are whitelisted
        self._last_start: dict[tuple[int, ...], int] = {}  # n-gram -> where it last started
        self._starts: deque[tuple[int, tuple[int, ...]]] = deque()  # (start, n-gram), oldest first

    @property
    def stopped(self) -> bool:
        return self.stop_at is not None

    def push(self, token_id: int) -> bool:
        """Feed one generated id; True once the stream repeats (and from then on)."""
        if self.stop_at is not None:
            return True
        token_id = int(token_id)
        if len(self._tail) == self.ngram and self._tail[0] in self.whitelist:
            self._tail_whitelisted -= 1  # that id leaves the tail
        self._tail.append(token_id)
        self._recent.append(token_id)
        self._tail_whitelisted += token_id in self.whitelist
        self._seen += 1
        if self._seen < self.ngram:
            return False
        start = self._seen - self.ngram
        gram = tuple(self._tail)
        earlier = self._last_start.get(gram)
        self._remember(start, gram)
        # An earlier start inside the window is a repeat unless the tail is whitelisted ids only.
        possible = earlier is not None and earlier >= self._seen - self.window
        if possible and self._tail_whitelisted < self.ngram and self._confirm():
            self.stop_at = self._seen
            return True
        return False

    def extend(self, token_ids: Iterable[int]) -> bool:
        """Feed a delta of ids in order, up to the one that stops the stream; True if it stopped."""
        for token_id in token_ids:
            if self.push(token_id):
                return True
        return self.stopped

    def _remember(self, start: int, gram: tuple[int, ...]) -> None:
        """Index the n-gram that starts at `start` and forget those that left the window."""
        self._last_start[gram] = start
        self._starts.append((start, gram))
        oldest = self._seen - self.window  # an n-gram starting before this is outside the window
        while self._starts and self._starts[0][0] < oldest:
            old_start, old_gram = self._starts.popleft()
            if self._last_start.get(old_gram) == old_start:
                del self._last_start[old_gram]

    def _confirm(self) -> bool:
        recent = torch.tensor(list(self._recent), dtype=torch.long)
        return repeats_in_window(recent, self.ngram, self.window, self.whitelist)
