"""The OCR stage on the vLLM engine: one async engine per actor, pages from many Ray Data batches in it at
once (continuous batching), each page charged its share of the engine's busy time.

Shape: `ocr_row` is the whole life of one page attempt (decode its image, run the engine, make its row, or an
error row); `ocr_row_with_policy` wraps it in the page policy (adaptive pruning's unpruned re-read, retries,
text-layer fallback) and assesses the page's final text; `VllmOcrStage.__call__` only fans a batch out to it
and reads each page's layout from the text it kept.

Faults:
- a page the engine rejects or fails on (too long for the model, bad image) -> an `ocr` error row with the
  reason; the other pages go on;
- the engine process dies (a crash, GPU out of memory at run time, killed) -> every page in flight fails
  with the engine's EngineDied (never an error row: no page's fault); the actor closes its engine and
  exits its process, Ray restarts it (new engine) and redoes its unfinished batches
  (`pools.ocr_max_task_retries`); finished batches already left the actor, so no page comes out twice.
- the actor itself is killed -> the same restart and redo; its engine core, now without a parent, ends
  itself (rtprune.engines.vllm.plugin.lifeline).
- the end of the run: Ray Data drops the actor, whose `__del__` closes the engine (quietly).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pyarrow as pa

from pipeline.config import PagePolicy, PoolConfig, QualityConfig
from pipeline.redact import describe_error
from pipeline.stages.adaptive import needs_second_look, with_second_look
from pipeline.stages.gpu_share import BusyClock, PhaseWork, page_seconds, split_phases
from pipeline.stages.ocr import page_image
from pipeline.stages.page_policy import (
    USAGE_COLUMNS,
    add_attempt,
    fall_back,
    needs_retry,
    ocr_result_row,
    retry_plan,
)
from pipeline.stages.page_quality import CONFIDENCE_COLUMNS, assess_row
from pipeline.stages.rasterizer import decode_page
from pipeline.stages.rows import OCR_OUTPUT_SCHEMA, from_batch, goes_to_ocr, mark_error, to_table
from pipeline.stages.structure import structure_row
from rtprune.api import PruneConfig
from rtprune.engines.contract import AsyncEngine, EngineConfig

log = logging.getLogger("pipeline")

ENGINE_DIED_EXIT_CODE = 70  # EX_SOFTWARE: Ray sees an unexpected exit and restarts the actor


@dataclass
class Share:
    """A page's share of its engine's busy seconds, known once the page has left the engine."""

    seconds: float = 0.0


class EngineMeter:
    """Admission and metering for one engine: at most `max_in_flight` pages at once (a semaphore), and a
    BusyClock that charges each page its share of the busy time while it is in the engine."""

    def __init__(self, max_in_flight: int) -> None:
        self.clock = BusyClock()
        self._max_in_flight = max_in_flight
        self._slots: asyncio.Semaphore | None = None  # made on first use, inside the actor's event loop

    @contextlib.asynccontextmanager
    async def page(self) -> AsyncIterator[Share]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_in_flight)
        async with self._slots:
            share = Share()
            token = self.clock.start()
            try:
                yield share
            finally:
                share.seconds = self.clock.finish(token)


def page_reason(exc: BaseException) -> str:
    """The error text of a failed page: vLLM wraps the real cause (EngineGenerateError has no message)."""
    parts = [describe_error(exc)]
    cause = exc.__cause__ or exc.__context__
    if cause is not None and not str(exc):
        parts.append(describe_error(cause))
    return ": ".join(parts)[:500]


async def ocr_row(
    engine: AsyncEngine,
    row: dict[str, Any],
    meter: EngineMeter,
    fatal: tuple[type[BaseException], ...] = (),
    *,
    prune: PruneConfig | None = None,
    temperature: float = 0.0,
    quality: QualityConfig | None = None,
) -> dict[str, Any]:
    """One page row through the engine: the ok row with text, usage and confidence, or an `ocr` error row.
    Rows that are already errors, and pages routed to their text layer, pass through. Exceptions in `fatal`
    (the engine itself is gone) propagate."""
    if not goes_to_ocr(row):
        return row
    try:  # ~14 ms of PNG decoding a page: off the event loop, which feeds the engine
        image = await asyncio.to_thread(
            decode_page, row["image"], row["width_px"], row["height_px"], row["page_format"]
        )
    except Exception as exc:  # a page image that does not decode fails alone
        return mark_error(row, "ocr", "cannot decode page image: " + describe_error(exc))
    try:
        async with meter.page() as share:
            result = await engine.ocr_page(image, prune=prune, temperature=temperature)
    except fatal:
        raise
    except Exception as exc:  # the engine rejected or failed this page: it fails alone
        return failed_row(row, page_reason(exc), share.seconds)
    seconds = page_seconds(result.usage, share.seconds)
    return ocr_result_row(row, result, engine.identity, seconds, quality)


def failed_row(row: dict[str, Any], reason: str, share_s: float) -> dict[str, Any]:
    """The `ocr` error row of a page the engine refused or failed on. It keeps the share of busy time it
    held (as prefill: it never produced text), so every busy second is charged to some row and failed pages
    show what they cost; a page refused before the model holds almost none."""
    return {
        **mark_error(row, "ocr", reason),
        **split_phases(share_s, PhaseWork(prefill_s=1.0)),
        "gpu_s": share_s,
        "ocr_attempts": 1,
    }


async def ocr_row_with_policy(
    engine: AsyncEngine,
    row: dict[str, Any],
    meter: EngineMeter,
    fatal: tuple[type[BaseException], ...],
    policy: PagePolicy,
    quality: QualityConfig | None = None,
) -> dict[str, Any]:
    """ocr_row, then the page policy: adaptive pruning's unpruned re-read of a page the model was unsure
    of, the second chances for a page that ended in one of policy.retry_on (the same rules as the
    static-batch stage, pipeline/stages/ocr.py, one page at a time since the engine batches in-flight pages
    by itself); then the quality columns of the page's final text (off the event loop). Every attempt's
    usage is added to the page."""
    quality = quality if quality is not None else QualityConfig()
    out = await ocr_row(engine, row, meter, fatal, quality=quality)
    if needs_second_look(out, policy):
        again = await ocr_row(engine, row, meter, fatal, prune=PruneConfig(method="none"), quality=quality)
        unpruned = again if again["status"] == "ok" else None
        out = with_second_look(out, {k: again[k] for k in USAGE_COLUMNS}, unpruned, policy)
    elif needs_retry(out, policy):
        out = await _second_chances(engine, row, out, meter, fatal, policy, quality)
    return await asyncio.to_thread(assess_row, out, quality)


async def _second_chances(
    engine: AsyncEngine,
    row: dict[str, Any],
    out: dict[str, Any],
    meter: EngineMeter,
    fatal: tuple[type[BaseException], ...],
    policy: PagePolicy,
    quality: QualityConfig,
) -> dict[str, Any]:
    """The retry plan for a page whose first attempt `out` ended in one of policy.retry_on, then its
    text layer if every retry failed."""
    last_reason = out["finish_reason"]
    for attempt in retry_plan(policy, engine.identity.prune_method):
        again = await ocr_row(
            engine, row, meter, fatal, prune=attempt.prune, temperature=attempt.temperature, quality=quality
        )
        reason = again["finish_reason"] if again["status"] == "ok" else ""
        usage = {k: again[k] for k in USAGE_COLUMNS}
        accepted = bool(reason) and reason not in policy.retry_on
        out = add_attempt(
            out, usage, again["text"], reason, accepted, {k: again[k] for k in CONFIDENCE_COLUMNS}
        )
        last_reason = reason or last_reason
        if out["text_source"] != "ocr":
            return out
    return fall_back(out, policy, last_reason)


def engine_dead_errors() -> tuple[type[BaseException], ...]:
    """The "engine is gone" exceptions: the engine's EngineDied, and vLLM's own EngineDeadError when vLLM
    is installed (the engine converts it; listed in case one escapes)."""
    from rtprune.engines.vllm.pages import EngineDied

    try:
        from vllm.v1.engine.exceptions import EngineDeadError
    except ImportError:
        return (EngineDied,)
    return EngineDied, EngineDeadError


def build_vllm_engine(engine: EngineConfig, pool: PoolConfig) -> AsyncEngine:
    """The actor's engine, with the pool's serving settings."""
    from rtprune.engines.vllm.engine import VllmEngine

    return VllmEngine(engine.model_copy(update={"backend": "vllm"}), pool.ocr_vllm)


class VllmOcrStage:
    """Page rows in, OCR'd page rows (OCR_OUTPUT_SCHEMA) out, on one vLLM engine per actor. Async: Ray Data
    runs up to `pools.ocr_batches_in_flight` calls at once in the actor's event loop, so the engine holds
    pages of several batches and a batch's slow page does not idle the GPU."""

    def __init__(
        self,
        engine: EngineConfig,
        pool: PoolConfig,
        policy: PagePolicy | None = None,
        figures: bool = True,
        quality: QualityConfig | None = None,
    ) -> None:
        self._engine = build_vllm_engine(engine, pool)
        self._figures = figures
        self._policy = policy if policy is not None else PagePolicy()
        self._quality = quality if quality is not None else QualityConfig()
        self._meter = EngineMeter(pool.ocr_vllm.max_num_seqs)
        self._fatal = engine_dead_errors()

    @property
    def busy_s(self) -> float:
        """Seconds this actor's engine had at least one page in flight (what its pages' gpu_s add up to)."""
        return self._meter.clock.busy_s

    async def __call__(self, batch: pa.Table) -> pa.Table:
        rows = from_batch(batch)
        try:
            out = await asyncio.gather(*(self._page(r) for r in rows))
        except self._fatal as exc:
            self._exit_for_restart(exc)
        return to_table(out, OCR_OUTPUT_SCHEMA)

    async def _page(self, row: dict[str, Any]) -> dict[str, Any]:
        """One page through the policy, then its layout (parsing and figure crops off the event loop)."""
        out = await ocr_row_with_policy(
            self._engine, row, self._meter, self._fatal, self._policy, self._quality
        )
        return await asyncio.to_thread(structure_row, out, partial(page_image, out), self._figures)

    def _exit_for_restart(self, exc: BaseException) -> None:
        """The engine cannot serve again: close it (its processes end with it), then exit the process so
        Ray restarts the actor with a new engine and redoes this actor's unfinished batches (raising would
        fail the batch, and the job). The first of the actor's concurrent calls to see it does this."""
        log.error("vLLM engine died (%s); restarting the OCR actor", describe_error(exc))
        with contextlib.suppress(Exception):
            self.close()
        os._exit(ENGINE_DIED_EXIT_CODE)

    def close(self) -> None:
        """Shut the engine down (its vLLM processes end). Idempotent."""
        engine = self.__dict__.pop("_engine", None)  # gone: a later call fails as with a None engine
        if engine is not None:
            engine.close()

    def __del__(self) -> None:
        # Ray Data's map actors end gracefully through __ray_shutdown__, which drops this object: the
        # engine closes here, not at interpreter exit.
        with contextlib.suppress(Exception):
            self.close()
            if in_ray_actor():
                # The process ends next. Its final garbage collection walks everything vLLM, torch and
                # transformers allocated, which took minutes on a loaded machine, so the actor outlived
                # the run (and ray.shutdown()). Frozen objects are skipped; exit reclaims them (vLLM's
                # engine core does the same on ROCm).
                gc.freeze()


def in_ray_actor() -> bool:
    """Whether this process is a Ray actor (whose end follows its UDF's __del__)."""
    import sys

    if "ray" not in sys.modules:
        return False
    import ray

    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None
