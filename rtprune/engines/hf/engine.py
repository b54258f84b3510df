"""Batched OCR with visual-token pruning at prefill, and what each page used.

Stages, each public so a benchmark or a sweep can time or vary one of them on the same inputs:
  prepare (PIL -> PreparedPage) -> encode (backend's get_image_features) -> prune (rtprune.prune_batch, then
  newline collapse) -> generate (pruned prompt ids + mm_encoder_outputs, greedy, repetition guard, and the
  log-probability of each chosen token: rtprune.engines.hf.confidence).
The model sees real prompt ids with one `<image>` placeholder per kept token, and the kept features replace
those placeholders (mm_encoder_outputs), so generate and its logits processors run unchanged.

Prefill vs decode: generate runs once; hooks on the model's forward time its first call (the prefill, which
builds the KV cache) with device synchronisation; decode is the rest of generate's wall time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from rtprune.api import PruneConfig, prune_batch
from rtprune.deepseek.repetition import RepetitionGuard, whitelist_ids
from rtprune.engines.contract import EngineConfig, EngineIdentity, FinishReason, PageResult, PageUsage
from rtprune.engines.decoding import decode_output
from rtprune.engines.hf.batch import (
    PromptBatch,
    PrunedPage,
    collapse_newlines,
    left_pad,
    prompt_with_positions,
    split_shares,
)
from rtprune.engines.hf.confidence import ChosenTokenLogprobs
from rtprune.models.base import Backend, PreparedPage


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so wall-clock readings cover it (CUDA kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def timed(device: torch.device, out: list[float]) -> Iterator[None]:
    """Append the synchronised wall time of the block to `out`."""
    synchronize(device)
    start = time.perf_counter()
    yield
    synchronize(device)
    out.append(time.perf_counter() - start)


@contextmanager
def seeded(device: torch.device, seed: int, active: bool) -> Iterator[None]:
    """Run the block from RNG state `seed` (when active), leaving the process's RNG state as it was."""
    if not active:
        yield
        return
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@dataclass(frozen=True)
class Generation:
    """generate's result per row: new ids (up to and including EOS), why it ended; batch phase seconds;
    per row the (L_i,) fp32 log-probability of each new id (rtprune.engines.hf.confidence)."""

    output_ids: list[torch.Tensor]
    finish_reasons: list[FinishReason]
    prompt_tokens: list[int]
    prefill_s: float
    decode_s: float
    token_logprobs: list[torch.Tensor] = field(default_factory=list)


@dataclass(frozen=True)
class BatchSeconds:
    """Measured seconds of one batch per phase (device-synchronised)."""

    encode_s: float
    prune_s: float
    prefill_s: float
    decode_s: float


class FirstForwardTimer:
    """Forward hooks that time the model's first call in a generate (the prefill)."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.device, self.calls, self.prefill_s, self._start = device, 0, 0.0, 0.0
        self._handles = [model.register_forward_pre_hook(self._pre), model.register_forward_hook(self._post)]

    def _pre(self, *_: Any) -> None:
        if self.calls == 0:
            synchronize(self.device)
            self._start = time.perf_counter()

    def _post(self, *_: Any) -> None:
        if self.calls == 0:
            synchronize(self.device)
            self.prefill_s = time.perf_counter() - self._start
        self.calls += 1

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


class OcrEngine:
    """Pages in, text and per-page usage out. One backend (model), one pruning config, greedy decoding;
    `ocr` takes per-call overrides of both (pruning off, sampling) for retries."""

    def __init__(self, config: EngineConfig, backend: Backend | None = None) -> None:
        from rtprune.engines.hf.loader import load_backend

        self.config = config
        self.backend = backend if backend is not None else load_backend(config)
        if self.backend.prompt != config.prompt:  # the backend tokenizes its prompt once, when built
            raise ValueError(
                f"backend was built for prompt {self.backend.prompt!r}, config has {config.prompt!r}"
            )
        self.device = next(self.backend.model.parameters()).device
        self._whitelist = whitelist_ids(self.backend.tokenizer)

    @property
    def identity(self) -> EngineIdentity:
        prune = self.config.prune
        return EngineIdentity(
            self.backend.model_id, str(self.backend.mode), prune.method, prune.config_hash()
        )

    def visual_tokens(self, width_px: int, height_px: int) -> int:
        return self.backend.visual_tokens(width_px, height_px)

    def prepare(self, images: Sequence[Any]) -> list[PreparedPage]:
        return [self.backend.prepare(image) for image in images]

    def encode(self, pages: Sequence[PreparedPage]) -> tuple[list[torch.Tensor], float]:
        """-> one (N_i, D) feature tensor per page, and the batch's encode seconds."""
        seconds: list[float] = []
        with timed(self.device, seconds):
            features = self.backend.encode(pages)
        return features, seconds[0]

    def prune(
        self,
        pages: Sequence[PreparedPage],
        features: Sequence[torch.Tensor],
        config: PruneConfig | None = None,
    ) -> tuple[list[PrunedPage], float]:
        """Prune each page's (N_i, D) features with `config` (default: the engine's); -> pages, seconds."""
        config = config if config is not None else self.config.prune
        seconds: list[float] = []
        with timed(self.device, seconds), torch.inference_mode():
            pruned = self._prune(pages, features, config)
        return pruned, seconds[0]

    def _prune(
        self, pages: Sequence[PreparedPage], features: Sequence[torch.Tensor], config: PruneConfig
    ) -> list[PrunedPage]:
        layouts = [page.layout for page in pages]

        def on_device(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
            return None if t is None else t.to(like.device)

        results = prune_batch(
            list(features),
            config,
            protected=[on_device(lay.protected, f) for lay, f in zip(layouts, features, strict=True)],
            padding=[on_device(lay.padding, f) for lay, f in zip(layouts, features, strict=True)],
            image=[on_device(page.image_gray, f) for page, f in zip(pages, features, strict=True)],
            token_boxes=[on_device(lay.token_boxes, f) for lay, f in zip(layouts, features, strict=True)],
        )
        out = []
        for layout, result in zip(layouts, results, strict=True):
            # count_from_pixels keeps a pruned row's newline: the count must not depend on the features
            newline = None if config.count_from_pixels else layout.newline
            keep = collapse_newlines(result.kept_index, newline)
            out.append(PrunedPage(result.tokens[keep], result.kept_index[keep], layout.n_tokens))
        return out

    def build_prompts(self, pruned: Sequence[PrunedPage]) -> PromptBatch:
        """Prompt ids with one placeholder per kept token, left-padded, with positions per position_mode."""
        ids, positions = [], []
        for page in pruned:
            full = self.backend.prompt_ids(page.n_visual)
            row_ids, row_pos = prompt_with_positions(
                full, self.backend.image_token_id, page.kept_index, self.config.position_mode
            )
            if row_ids.tolist() != self.backend.prompt_ids(page.n_kept):
                raise ValueError("backend prompt_ids does not place image tokens contiguously")
            ids.append(row_ids)
            positions.append(row_pos)
        return left_pad(ids, positions, self._pad_id()).to(self.device)

    def _pad_id(self) -> int:
        tok = self.backend.tokenizer
        return int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)

    def _model_inputs(self, pruned: Sequence[PrunedPage], batch: PromptBatch) -> dict[str, Any]:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        image = BaseModelOutputWithPooling(pooler_output=[page.features for page in pruned])
        return {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "position_ids": batch.position_ids,
            "mm_encoder_outputs": {"image": image},
        }

    def prefill(self, pruned: Sequence[PrunedPage]) -> float:
        """One prefill forward (builds the KV cache, logits of the last position) -> synchronised seconds."""
        inputs = self._model_inputs(pruned, self.build_prompts(pruned))
        seconds: list[float] = []
        with timed(self.device, seconds), torch.inference_mode():
            self.backend.model(**inputs, use_cache=True, logits_to_keep=1)
        return seconds[0]

    def generate(self, pruned: Sequence[PrunedPage], temperature: float = 0.0) -> Generation:
        """Decoding of a batch of pruned pages, capped and guarded against loops: greedy, or sampled at
        `temperature` (> 0) from a generator seeded with EngineConfig.seed, so a retry is reproducible."""
        from transformers import GenerationConfig

        batch = self.build_prompts(pruned)
        tok, cfg = self.backend.tokenizer, self.config
        guard = RepetitionGuard(
            batch.input_ids.shape[1],
            cfg.repetition_ngram,
            cfg.repetition_window,
            int(tok.eos_token_id),
            self._whitelist,
        )
        # A fresh GenerationConfig, so a checkpoint's own sampling defaults cannot leak in.
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
            if temperature > 0
            else {"do_sample": False}
        )
        gen_config = GenerationConfig(
            **sampling,
            max_new_tokens=cfg.max_new_tokens,
            eos_token_id=int(tok.eos_token_id),
            pad_token_id=self._pad_id(),
            use_cache=True,
        )
        timer = FirstForwardTimer(self.backend.model, self.device)
        confidence = ChosenTokenLogprobs()  # first: it must see the scores before the guard changes them
        seconds: list[float] = []
        try:
            with (
                seeded(self.device, cfg.seed, temperature > 0),
                timed(self.device, seconds),
                torch.inference_mode(),
            ):
                out = self.backend.model.generate(
                    **self._model_inputs(pruned, batch),
                    generation_config=gen_config,
                    logits_processor=[confidence, guard],
                )
        finally:
            timer.remove()
        new = out[:, batch.input_ids.shape[1] :].cpu()
        rows = [self._trim(row) for row in new]
        reasons = [self._finish_reason(i, row, guard) for i, row in enumerate(rows)]
        logprobs = confidence.per_step(new)
        return Generation(
            rows,
            reasons,
            batch.lengths,
            timer.prefill_s,
            seconds[0] - timer.prefill_s,
            [logprobs[i, : row.numel()] for i, row in enumerate(rows)],
        )

    def _trim(self, row: torch.Tensor) -> torch.Tensor:
        """(L,) new ids -> up to and including the first EOS (what follows is padding of a finished row)."""
        eos = (row == self.backend.tokenizer.eos_token_id).nonzero()
        return row[: int(eos[0]) + 1] if eos.numel() else row

    def _finish_reason(self, row_index: int, row: torch.Tensor, guard: RepetitionGuard) -> FinishReason:
        if row_index in guard.stopped:
            return "repetition"
        ended = row.numel() > 0 and int(row[-1]) == self.backend.tokenizer.eos_token_id
        return "eos" if ended else "length"

    def ocr(
        self, images: Sequence[Any], *, prune: PruneConfig | None = None, temperature: float = 0.0
    ) -> list[PageResult]:
        """One batch of page images -> one PageResult per page. Raises if the batch fails; an out-of-memory
        error propagates unchanged so the caller can split the batch and retry.

        Per-call overrides (a retry of a page that looped): `prune` replaces the configured pruning for
        this call (PruneConfig(method="none") keeps every visual token); `temperature` > 0 samples instead
        of decoding greedily, seeded from EngineConfig.seed."""
        return self.ocr_timed(images, prune=prune, temperature=temperature)[0]

    def ocr_timed(
        self, images: Sequence[Any], *, prune: PruneConfig | None = None, temperature: float = 0.0
    ) -> tuple[list[PageResult], BatchSeconds]:
        """ocr, plus the batch-level phase seconds that the pages' usage records share."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if not images:
            return [], BatchSeconds(0.0, 0.0, 0.0, 0.0)
        pages = self.prepare(images)
        features, encode_s = self.encode(pages)
        pruned, prune_s = self.prune(pages, features, prune)
        gen = self.generate(pruned, temperature)
        return self.results(pruned, gen, encode_s, prune_s), BatchSeconds(
            encode_s, prune_s, gen.prefill_s, gen.decode_s
        )

    def results(
        self, pruned: Sequence[PrunedPage], gen: Generation, encode_s: float, prune_s: float
    ) -> list[PageResult]:
        """Text and usage per page from the stages' outputs; batch seconds shared as PageUsage says."""
        n_out = [int(row.numel()) for row in gen.output_ids]
        shares = {
            name: split_shares(total, gen.prompt_tokens)
            for name, total in (("encode", encode_s), ("prune", prune_s), ("prefill", gen.prefill_s))
        }
        decode = split_shares(gen.decode_s, n_out)
        results = []
        for i, page in enumerate(pruned):
            usage = PageUsage(
                visual_tokens=page.n_visual,
                visual_tokens_kept=page.n_kept,
                prompt_tokens=gen.prompt_tokens[i],
                output_tokens=n_out[i],
                encode_s=shares["encode"][i],
                prune_s=shares["prune"][i],
                prefill_s=shares["prefill"][i],
                decode_s=decode[i],
                finish_reason=gen.finish_reasons[i],
            )
            text = decode_output(self.backend.tokenizer, gen.output_ids[i].tolist())
            scored = tuple(gen.token_logprobs[i].tolist()) if gen.token_logprobs else ()
            results.append(PageResult(text=text, usage=usage, token_logprobs=scored))
        return results
