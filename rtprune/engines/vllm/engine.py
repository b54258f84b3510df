"""The vLLM engine: pages as independent requests to vLLM's AsyncLLM (continuous batching, paged KV cache),
with RTPrune inside the model through this project's vLLM plugin (rtprune.engines.vllm.plugin).

Same contract as the transformers engine (rtprune.engines.hf.engine.OcrEngine): pages in, PageResult (text +
PageUsage + the sampled tokens' log-probabilities) out, finish reasons eos / length / repetition, the same
repetition guard (a logits processor, or the stream guard: VllmSettings.repetition_guard), max_new_tokens as
the token cap. Two ways in:
  - `await ocr_page(image, ...)`: one page, from any event loop or thread (a Ray async actor can have many
    pages of many batches in flight at once); raises PageError for that page alone.
  - `ocr(images, ...)`: every page submitted at once as its own request, results in input order. If some
    pages fail, it raises PageBatchError after all have ended; its `results` has a PageResult or a
    PageError per page (a caller that knows this keeps the finished pages; one that does not, like
    pipeline.stages.ocr.run_resilient, retries the pages one by one and gets each page's own PageError).

AsyncLLM runs on an event loop in a thread this engine owns, so its background output handler has one
home whatever loop or thread the caller uses; calls cross over with run_coroutine_threadsafe.

Usage columns for this engine (see docs/vllm.md): encode_s and prune_s are 0 (the encoder and pruning run
inside vLLM's prefill step and are not reported apart); prefill_s and decode_s are the page's share of the
engine's busy time over its prefill (scheduled -> first token) and decode (first -> last token) intervals
from vLLM's request metrics (rtprune.engines.vllm.pages.share_busy_time); queueing time is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from rtprune.api import PruneConfig
from rtprune.engines.contract import EngineConfig, EngineIdentity, PageResult, PageUsage
from rtprune.engines.decoding import decode_output
from rtprune.engines.support import vllm_problem
from rtprune.engines.vllm.pages import (
    EngineDied,
    PageBatchError,
    PageError,
    Timeline,
    finish_reason,
    share_busy_time,
)
from rtprune.engines.vllm.settings import VllmSettings
from rtprune.engines.vllm.startup import model_source, quiet_vllm, runs_on_cpu
from rtprune.engines.vllm.stream import StreamWatch, sampled_logprobs, stream_outcome

REPETITION_PROCESSOR = "rtprune.engines.vllm.plugin.logits:RepetitionGuardProcessor"


class _LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="vllm-engine-loop", daemon=True)
        self.thread.start()

    def submit(self, coro: Any) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)


async def _cancel_output_handler(llm: Any) -> None:
    task = getattr(llm, "output_handler", None)
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class VllmEngine:
    """Pages in, text and per-page usage out, on vLLM with RTPrune inside the model."""

    def __init__(self, config: EngineConfig, settings: VllmSettings | None = None) -> None:
        problem = vllm_problem(config)  # the driver checks this too, before anything starts
        if problem is not None:
            raise ValueError(problem)
        self.config, self.settings = config, settings or VllmSettings()
        quiet_vllm(self.settings.log_level)
        self._model = model_source(config, self.settings)  # tiny-random-v1: a cached folder, made once
        self.stream_guard = False  # whether loops are stopped on the stream (decided when vLLM starts)
        self._ids = itertools.count()
        self._running: dict[str, Timeline | None] = {}
        self._finished: deque[Timeline] = deque(maxlen=4 * self.settings.max_num_seqs)
        self._thread = _LoopThread()
        try:
            self._llm = self._thread.submit(self._start()).result()
        except BaseException:
            self._thread.stop()
            raise
        from rtprune.deepseek.repetition import whitelist_ids

        self._eos = int(self._tokenizer.eos_token_id)
        self._whitelist = whitelist_ids(self._tokenizer)

    async def _start(self) -> Any:
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from rtprune.engines.vllm.plugin import engine_kwargs

        kwargs = engine_kwargs(
            self._model,
            self.config.mode,
            dtype=self._dtype(),
            **self.settings.engine_kwargs(cpu=runs_on_cpu(self.config)),
        )
        kwargs.setdefault("seed", self.config.seed)
        # The confidence's meaning (rtprune.engines.vllm.stream): the model's log-probs before processors.
        kwargs.setdefault("logprobs_mode", "raw_logprobs")
        vllm_config = AsyncEngineArgs(**kwargs, disable_log_stats=False).create_engine_config()
        self.stream_guard = self._wants_stream_guard(vllm_config.use_v2_model_runner)
        if not self.stream_guard:  # a second config costs ~50 ms: the first one loaded what it needs
            kwargs["logits_processors"] = [*kwargs.get("logits_processors", []), REPETITION_PROCESSOR]
            vllm_config = AsyncEngineArgs(**kwargs, disable_log_stats=False).create_engine_config()
        llm = AsyncLLM.from_vllm_config(vllm_config, disable_log_stats=False)
        self._tokenizer = llm.get_tokenizer()
        return llm

    def _wants_stream_guard(self, v2_model_runner: bool) -> bool:
        """VllmSettings.repetition_guard resolved: "auto" takes the stream guard where vLLM's model runner
        (the V2 one) refuses this project's V1-interface logits processor."""
        mode = self.settings.repetition_guard
        return mode == "stream" or (mode == "auto" and v2_model_runner)

    def _dtype(self) -> str:
        """ "auto": bf16 on CUDA, fp32 on CPU (as the transformers engine); else as configured."""
        if self.config.dtype != "auto":
            return self.config.dtype
        import torch

        return "bfloat16" if torch.cuda.is_available() else "float32"

    # -- what the pipeline reads besides OCR (rtprune.engines.contract: Engine, AsyncEngine) -------------------
    @property
    def identity(self) -> EngineIdentity:
        """prune_config_hash is the hash of what runs: the plugin prunes under the pixel count rule
        (count_from_pixels), so a dynamic setting reports another hash here than on the transformers engine's
        default rule."""
        from rtprune.engines.vllm.plugin.page_plan import effective_prune

        c = self.config
        return EngineIdentity(c.model, c.mode, c.prune.method, effective_prune(c.prune).config_hash())

    def visual_tokens(self, width_px: int, height_px: int) -> int:
        from rtprune.engines.vllm.plugin import visual_token_counts

        return visual_token_counts(width_px, height_px, self.config.mode, None)[0]

    # -- OCR ------------------------------------------------------------------------------------------
    async def ocr_page(
        self,
        image: Any,
        *,
        prune: PruneConfig | None = None,
        temperature: float = 0.0,
        max_new_tokens: int | None = None,
        ignore_eos: bool = False,
    ) -> PageResult:
        """One page -> its PageResult; raises PageError for this page alone. Callable from any event loop.

        prune: None = the engine's pruning, PruneConfig(method="none") = off. temperature > 0 samples
        (seeded from EngineConfig.seed). max_new_tokens / ignore_eos override the cap and let a page run
        to it (benchmarks force output lengths with them)."""
        self._check_open()
        future = self._thread.submit(self._ocr_page(image, prune, temperature, max_new_tokens, ignore_eos))
        return await asyncio.wrap_future(future)

    def ocr(
        self, images: Sequence[Any], *, prune: PruneConfig | None = None, temperature: float = 0.0
    ) -> list[PageResult]:
        """Pages -> PageResults in order, all submitted at once. Raises PageBatchError if any page failed."""
        results = self.ocr_settled(images, prune=prune, temperature=temperature)
        if any(isinstance(r, PageError) for r in results):
            raise PageBatchError(results)
        return results  # type: ignore[return-value]

    def ocr_settled(
        self,
        images: Sequence[Any],
        *,
        prune: PruneConfig | None = None,
        temperature: float = 0.0,
        max_new_tokens: Sequence[int] | None = None,
        ignore_eos: bool = False,
    ) -> list[PageResult | PageError]:
        """Like ocr, with each page's PageError in its place instead of an exception; max_new_tokens: a cap
        per page (benchmarks)."""
        self._check_open()
        caps = list(max_new_tokens) if max_new_tokens is not None else [None] * len(images)
        if len(caps) != len(images):
            raise ValueError(f"{len(caps)} caps for {len(images)} pages")

        async def run_all() -> list[PageResult | PageError]:
            tasks = [
                self._ocr_page(image, prune, temperature, cap, ignore_eos)
                for image, cap in zip(images, caps, strict=True)
            ]
            out = await asyncio.gather(*tasks, return_exceptions=True)
            return [self._settle(r) for r in out]

        return self._thread.submit(run_all()).result()

    def _check_open(self) -> None:
        if getattr(self, "_llm", None) is None:  # closed: its loop no longer runs, a call would never end
            raise EngineDied("the engine was closed")

    @staticmethod
    def _settle(result: Any) -> PageResult | PageError:
        """A page's outcome; anything but a PageError (EngineDied, a bug) ends the whole call."""
        if isinstance(result, BaseException) and not isinstance(result, PageError):
            raise result
        return result

    async def _ocr_page(
        self,
        image: Any,
        prune: PruneConfig | None,
        temperature: float,
        max_new_tokens: int | None,
        ignore_eos: bool,
    ) -> PageResult:
        prune = self.config.prune if prune is None else prune
        # Small and thin pages are fitted, not refused: the v1 rules both engines share
        # (rtprune.deepseek.v1_preprocess.fit_page) apply inside the request's planning and the processor.
        request, (n_visual, n_kept) = self._request(image, prune)
        params = self._sampling_params(temperature, max_new_tokens, ignore_eos)
        request_id = f"page-{next(self._ids)}"
        self._running[request_id] = None
        watch = self._watch(ignore_eos)
        try:
            final = await self._generate(request, params, request_id, watch)
        except Exception as exc:
            if self.dead:  # whatever vLLM raised (EngineDeadError, a wrapped error): not this page's fault
                raise EngineDied(f"vLLM's engine died: {type(exc).__name__}") from exc
            raise
        finally:
            self._running.pop(request_id, None)
        return self._result(final, n_visual, n_kept, watch)

    def _watch(self, ignore_eos: bool) -> StreamWatch | None:
        """The stream guard of one request, when the engine stops loops that way (never for a page forced
        to run to its cap)."""
        if not self.stream_guard or ignore_eos:
            return None
        from rtprune.deepseek.stream_guard import StreamLoopGuard

        cfg = self.config
        return StreamWatch(StreamLoopGuard(cfg.repetition_ngram, cfg.repetition_window, self._whitelist))

    def _request(self, image: Any, prune: PruneConfig) -> tuple[dict[str, Any], tuple[int, int]]:
        from rtprune.engines.vllm.plugin import build_request, visual_token_counts

        try:
            request = build_request(image, mode=self.config.mode, prune=prune, prompt=self.config.prompt)
            counts = visual_token_counts(image.width, image.height, self.config.mode, prune, image)
        except ValueError as exc:  # a pruning setting this page cannot meet
            raise PageError(f"cannot plan this page's visual tokens: {exc}", stage="input") from exc
        return request, counts

    def _sampling_params(self, temperature: float, max_new_tokens: int | None, ignore_eos: bool) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        from rtprune.engines.vllm.plugin.logits import repetition_args

        cfg = self.config
        extra = (
            None
            if ignore_eos or self.stream_guard
            else repetition_args(cfg.repetition_ngram, cfg.repetition_window, self._whitelist, self._eos)
        )
        return SamplingParams(
            temperature=temperature,
            seed=cfg.seed if temperature > 0 else None,
            max_tokens=max_new_tokens or cfg.max_new_tokens,
            ignore_eos=ignore_eos,
            detokenize=False,
            extra_args=extra,
            output_kind=RequestOutputKind.CUMULATIVE,
            logprobs=0 if self.settings.token_logprobs else None,  # the sampled token's only: no top-k
            flat_logprobs=True,  # a few flat lists per request instead of an object per token
        )

    async def _generate(
        self, request: dict[str, Any], params: Any, request_id: str, watch: StreamWatch | None
    ) -> Any:
        """Stream the request (each step's output updates the busy-time ledger); -> its final output, or
        the output on which `watch` saw a loop (the request is aborted there)."""
        from vllm.exceptions import VLLMClientError

        final = None
        stream = self._llm.generate(request, params, request_id)
        try:
            async for out in stream:
                self._running[request_id] = self._timeline(out)
                final = out
                if watch is not None and watch.feed(out.outputs[0].token_ids):
                    break
        except (
            VLLMClientError,
            ValueError,
        ) as exc:  # vLLM refused this request (longer than max_model_len...)
            raise PageError(f"vLLM refused the page: {exc}") from exc
        finally:
            await stream.aclose()  # after a break: vLLM aborts the request (GeneratorExit in generate)
        stopped = watch is not None and watch.stop_at is not None
        if final is None or not (final.finished or stopped):
            raise PageError("vLLM ended the request without a final output")
        return final

    @staticmethod
    def _timeline(out: Any) -> Timeline | None:
        m = out.metrics
        if m is None or not m.first_token_ts:
            return None
        return Timeline(
            m.scheduled_ts,
            m.first_token_ts,
            m.last_token_ts,
            len(out.prompt_token_ids or ()),
            len(out.outputs[0].token_ids),
        )

    def _result(self, final: Any, n_visual: int, n_kept: int, watch: StreamWatch | None) -> PageResult:
        """The page's result. output_tokens counts every token vLLM decoded (what the page cost); under the
        stream guard the text and its log-probabilities stop where the guard did."""
        completion, cfg = final.outputs[0], self.config
        ids = list(completion.token_ids)
        if watch is not None:
            n_text, reason = stream_outcome(ids, self._eos, watch.stop_at)
        else:
            n_text = len(ids)
            reason = finish_reason(
                ids, self._eos, cfg.repetition_ngram, cfg.repetition_window, self._whitelist
            )
        prefill_s, decode_s = self._shares(self._timeline(final))
        usage = PageUsage(
            visual_tokens=n_visual,
            visual_tokens_kept=n_kept,
            prompt_tokens=len(final.prompt_token_ids or ()),
            output_tokens=len(ids),
            encode_s=0.0,
            prune_s=0.0,
            prefill_s=prefill_s,
            decode_s=decode_s,
            finish_reason=reason,
        )
        return PageResult(
            text=decode_output(self._tokenizer, list(ids[:n_text])),
            usage=usage,
            token_logprobs=sampled_logprobs(ids[:n_text], completion.logprobs),
        )

    def _shares(self, own: Timeline | None) -> tuple[float, float]:
        """This page's share of the engine's busy time among the requests that ran beside it."""
        if own is None:
            return 0.0, 0.0
        others = list(self._finished)
        for timeline in self._running.values():
            if timeline is not None and timeline.last_token_s < own.last_token_s:
                # still running: it keeps its observed decode rate until at least this page's end
                decoded = timeline.output_tokens - 1
                span = timeline.last_token_s - timeline.first_token_s
                rate = decoded / span if span > 0 and decoded > 0 else 0.0
                extra = rate * (own.last_token_s - timeline.last_token_s)
                timeline = replace(
                    timeline,
                    last_token_s=own.last_token_s,
                    output_tokens=timeline.output_tokens + round(extra),
                )
            if timeline is not None:
                others.append(timeline)
        self._finished.append(own)
        return share_busy_time(own, others)

    @property
    def dead(self) -> bool:
        """True once vLLM's engine core is gone (vLLM's client watches its process) or this engine was
        closed: nothing more can run on it."""
        llm = getattr(self, "_llm", None)
        return llm is None or bool(llm.errored)

    def close(self) -> None:
        """Shut vLLM down (its engine process and workers) and stop the loop thread. Idempotent, quiet.

        vLLM's output handler reads the engine core's socket; stopping the engine core first makes that read
        fail and the handler log an EngineDeadError with a traceback, so a normal shutdown would look like
        an engine death. It is cancelled first (pages still in flight, if any, never finish)."""
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            with contextlib.suppress(Exception):
                self._thread.submit(_cancel_output_handler(llm)).result(timeout=10)
            llm.shutdown()
            # AsyncLLM.__del__ shuts down again; at interpreter exit, with module globals gone, that raises
            # and prints a traceback. Done once is enough.
            llm.shutdown = lambda *_a, **_k: None
        self._thread.stop()
        if llm is not None:
            # vLLM closes its client's sockets on the loop thread, which may already have stopped (after an
            # engine death it always has): a ZMQ context with open sockets blocks forever in the garbage
            # collector's term(). With the loop stopped, closing them here is safe.
            ctx = getattr(getattr(llm, "engine_core", None), "ctx", None)
            if ctx is not None and not ctx.closed:
                with contextlib.suppress(Exception):
                    ctx.destroy(linger=0)

    def __enter__(self) -> VllmEngine:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
