"""The repetition guard as a vLLM v1 logits processor with per-request arguments (runs in vLLM's workers).

Same meaning as the transformers engine's guard (rtprune.deepseek.repetition): a request stops when its last
`ngram` generated ids already occur, as an earlier n-gram, within its last `window` generated ids (an n-gram
made only of whitelisted ids never counts); stopping forces EOS on that step. The prompt is never examined.

A request opts in through SamplingParams.extra_args[EXTRA_ARG] = {"ngram", "window", "whitelist", "eos"}
(see `repetition_args`); requests without it are untouched. DeepSeek's own vLLM processor
(NGramPerReqLogitsProcessor) differs: it bans the token that would complete a repeated n-gram and decoding
goes on, so a looping page runs to the token cap instead of ending.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from rtprune.deepseek.repetition import repeats_in_window

EXTRA_ARG = "rtprune_repetition"


def repetition_args(ngram: int, window: int, whitelist: Iterable[int], eos_token_id: int) -> dict[str, Any]:
    """extra_args entry that turns the guard on for one request."""
    if window < ngram + 1:
        raise ValueError(f"window ({window}) must exceed ngram ({ngram})")
    return {
        EXTRA_ARG: {
            "ngram": int(ngram),
            "window": int(window),
            "whitelist": sorted(int(t) for t in whitelist),
            "eos": int(eos_token_id),
        }
    }


class _RequestGuard:
    """Per-request state: called with the request's generated ids and its (V,) logits row."""

    def __init__(self, ngram: int, window: int, whitelist: frozenset[int], eos: int) -> None:
        self.ngram, self.window, self.whitelist, self.eos = ngram, window, whitelist, eos

    def __call__(self, output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
        if len(output_ids) < self.ngram + 1:
            return logits
        recent = torch.tensor(output_ids[-self.window :], dtype=torch.long)
        if repeats_in_window(recent, self.ngram, self.window, self.whitelist):
            eos_logit = torch.zeros((), dtype=logits.dtype, device=logits.device)
            logits.fill_(float("-inf"))
            logits[self.eos] = eos_logit
        return logits


class RepetitionGuardProcessor(AdapterLogitsProcessor):
    """Registered with the engine (`logits_processors=[...]`); active for requests that carry EXTRA_ARG."""

    @classmethod
    def validate_params(cls, params: SamplingParams) -> None:
        args = (params.extra_args or {}).get(EXTRA_ARG)
        if args is None:
            return
        ngram, window = args.get("ngram"), args.get("window")
        if not (isinstance(ngram, int) and isinstance(window, int) and 2 <= ngram < window):
            raise ValueError(f"{EXTRA_ARG} needs ints 2 <= ngram < window, got {args!r}")
        if not isinstance(args.get("eos"), int):
            raise ValueError(f"{EXTRA_ARG} needs the eos token id, got {args!r}")

    def is_argmax_invariant(self) -> bool:
        return False  # it forces EOS, which changes greedy choices

    def new_req_logits_processor(self, params: SamplingParams) -> _RequestGuard | None:
        args = (params.extra_args or {}).get(EXTRA_ARG)
        if args is None:
            return None
        return _RequestGuard(args["ngram"], args["window"], frozenset(args.get("whitelist", ())), args["eos"])
