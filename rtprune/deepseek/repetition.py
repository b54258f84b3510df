"""Windowed n-gram repetition guard: a page whose output loops is ended instead of decoding to the cap.

A row stops when its last `ngram` generated tokens already occur, as an earlier n-gram, within its last
`window` generated tokens (overlaps count, so one token repeated `ngram + 1` times triggers). The prompt is
never examined: its image placeholders repeat by construction. An n-gram made only of whitelisted ids (table
cell tags: a long row of empty cells is legitimate) never triggers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

WHITELIST_TOKENS = ("<td>", "</td>")


def repeats_in_window(generated: torch.Tensor, ngram: int, window: int, whitelist: frozenset[int]) -> bool:
    """True if the last `ngram` ids of `generated` (L,) already occur earlier within its last `window` ids."""
    if generated.numel() < ngram + 1:
        return False
    recent = generated[-window:]
    tail = recent[-ngram:]
    if whitelist and all(int(t) in whitelist for t in tail):
        return False
    earlier = recent[:-1].unfold(0, ngram, 1)  # (W - n, n): every n-gram that starts before the tail
    return bool((earlier == tail).all(dim=1).any())


def whitelist_ids(tokenizer: Any, tokens: Iterable[str] = WHITELIST_TOKENS) -> frozenset[int]:
    """Ids of `tokens` that the tokenizer has as single entries; a tokenizer without them whitelists nothing."""
    vocab = tokenizer.get_vocab()
    return frozenset(vocab[t] for t in tokens if t in vocab)


class RepetitionGuard:
    """A transformers logits processor (duck-typed, so this module needs no transformers import) that forces EOS on rows that loop, and remembers which rows it ended.

    prompt_len is the (padded) prompt length of the batch, so only generated ids are examined.
    """

    def __init__(
        self,
        prompt_len: int,
        ngram: int,
        window: int,
        eos_token_id: int,
        whitelist: frozenset[int] = frozenset(),
    ) -> None:
        if window < ngram + 1:
            raise ValueError(f"window ({window}) must exceed ngram ({ngram})")
        self.prompt_len, self.ngram, self.window = prompt_len, ngram, window
        self.eos_token_id, self.whitelist = eos_token_id, whitelist
        self.stopped: set[int] = set()
        self._ended: set[int] = set()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """input_ids (B, prompt_len + t), scores (B, V) -> scores with rows that loop forced to EOS."""
        n_generated = input_ids.shape[1] - self.prompt_len
        if n_generated <= 0:
            return scores
        # Only the window is copied to the host: the whole sequence would cost O(length) every step.
        recent = input_ids[:, -min(n_generated, self.window) :].cpu()
        for row in range(recent.shape[0]):
            if row in self.stopped or row in self._ended:
                continue
            # A row that already ended is fed padding, which must not read as a loop. Called every step,
            # the guard sees each EOS while it is still inside the window.
            if bool((recent[row] == self.eos_token_id).any()):
                self._ended.add(row)
                continue
            if repeats_in_window(recent[row], self.ngram, self.window, self.whitelist):
                self.stopped.add(row)
                scores[row] = torch.finfo(scores.dtype).min
                scores[row, self.eos_token_id] = 0.0
        return scores
