"""The OCR step for a batch of page rows: cost-sorted sub-batches, OOM splitting, per-page isolation,
adaptive pruning's unpruned re-read of low-confidence pages, the page policy's second chances (retries, then
the text layer) for pages that loop or hit the cap, the pages' quality columns, then each page's layout read
from the text it kept (pipeline/stages/structure.py); OcrStage, its Ray Data class on the static-batch
(transformers) engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import pyarrow as pa

from pipeline.config import PagePolicy, QualityConfig
from pipeline.redact import describe_error
from pipeline.stages.adaptive import needs_second_look, with_second_look
from pipeline.stages.gpu_share import page_seconds
from pipeline.stages.page_policy import (
    fall_back,
    low_token_probability,
    needs_retry,
    ocr_result_row,
    retry_plan,
    usage_columns,
    with_attempt,
)
from pipeline.stages.page_quality import assess_rows, confidence_columns
from pipeline.stages.rasterizer import decode_page
from pipeline.stages.rows import OCR_OUTPUT_SCHEMA, PageFailure, from_batch, goes_to_ocr, mark_error, to_table
from pipeline.stages.structure import structure_row
from rtprune.engines.contract import Engine, EngineConfig, PageResult

T = TypeVar("T")
R = TypeVar("R")

Outcome = PageResult | PageFailure  # what one OCR attempt of one page came to
OcrFn = Callable[[list[Any]], list[PageResult]]  # page images -> results (engine.ocr, or it with overrides)


def run_resilient(
    fn: Callable[[list[T]], list[R]],
    items: list[T],
    oom: tuple[type[BaseException], ...],
    on_oom: Callable[[], None] = lambda: None,
) -> list[R | PageFailure]:
    """fn over items; a PageFailure (stage "ocr") in the result is that item's error. Out of memory: split
    in halves down to single items (smaller batches fit). Any other batch failure: retry items one by one,
    so only the item that really fails becomes an error."""
    try:
        results = fn(items)
        if len(results) != len(items):
            raise RuntimeError(f"engine returned {len(results)} results for {len(items)} pages")
        return list(results)
    except oom as exc:
        on_oom()
        if len(items) == 1:
            return [PageFailure("ocr", "out of memory on a single page: " + describe_error(exc))]
        mid = len(items) // 2
        return run_resilient(fn, items[:mid], oom, on_oom) + run_resilient(fn, items[mid:], oom, on_oom)
    except Exception as exc:  # a page the model cannot handle must not take its batch down
        if len(items) == 1:
            return [PageFailure("ocr", describe_error(exc))]
        return [r for item in items for r in run_resilient(fn, [item], oom, on_oom)]


def cost_sorted_batches(costs: Sequence[int], size: int) -> list[list[int]]:
    """Indices grouped into batches of `size` pages of similar cost, so little padding is wasted."""
    order = sorted(range(len(costs)), key=lambda i: costs[i])
    return [order[k : k + size] for k in range(0, len(order), size)]


def _decode(
    rows: list[dict[str, Any]], indices: list[int]
) -> tuple[list[int], list[Any], dict[int, PageFailure]]:
    """(indices decoded, their images, {index: failure} for pages whose image does not decode)."""
    done, images, failed = [], [], {}
    for i in indices:
        r = rows[i]
        try:
            images.append(decode_page(r["image"], r["width_px"], r["height_px"], r["page_format"]))
            done.append(i)
        except Exception as exc:  # a page image that does not decode fails alone
            failed[i] = PageFailure("ocr", "cannot decode page image: " + describe_error(exc))
    return done, images, failed


def _run_pass(
    engine: Engine,
    ocr_fn: OcrFn,
    rows: list[dict[str, Any]],
    indices: list[int],
    sub_batch_size: int,
    oom: tuple[type[BaseException], ...],
    on_oom: Callable[[], None],
) -> dict[int, Outcome]:
    """ocr_fn over the pages `indices` in cost-sorted sub-batches -> {index: PageResult, or why it failed}.
    The next sub-batch's images are decoded on a thread while the engine runs the current one (PIL
    releases the GIL while decoding): PNG decoding costs ~14 ms a page, a real share of a fast engine's time."""
    costs = [engine.visual_tokens(rows[i]["width_px"], rows[i]["height_px"]) for i in indices]
    batches = [[indices[k] for k in b] for b in cost_sorted_batches(costs, sub_batch_size)]
    results: dict[int, Outcome] = {}
    if not batches:
        return results
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        pending = pool.submit(_decode, rows, batches[0])
        for n in range(len(batches)):
            done, images, failed = pending.result()
            if n + 1 < len(batches):
                pending = pool.submit(_decode, rows, batches[n + 1])
            results.update(failed)
            if images:
                outcomes = run_resilient(ocr_fn, images, oom, on_oom)
                results.update(zip(done, outcomes, strict=True))
    return results


def ocr_pages(
    engine: Engine,
    rows: list[dict[str, Any]],
    sub_batch_size: int,
    oom: tuple[type[BaseException], ...],
    on_oom: Callable[[], None] = lambda: None,
    policy: PagePolicy | None = None,
    figures: bool = True,
    quality: QualityConfig | None = None,
) -> list[dict[str, Any]]:
    """OCR every ok row (error rows and pages routed to their text layer pass through untouched), re-read the
    low-confidence pruned pages unpruned (adaptive pruning, when the policy turns it on), give pages that
    failed the policy's second chances, assess every page's final text, then read each page's layout from
    the text it kept (figures cropped when `figures`); returns rows in input order."""
    policy = policy if policy is not None else PagePolicy()
    quality = quality if quality is not None else QualityConfig()
    out = list(rows)
    todo = [i for i, r in enumerate(rows) if goes_to_ocr(r)]
    identity = engine.identity
    for i, result in _run_pass(engine, engine.ocr, rows, todo, sub_batch_size, oom, on_oom).items():
        out[i] = (
            mark_error(rows[i], result)
            if isinstance(result, PageFailure)
            else ocr_result_row(rows[i], result, identity, page_seconds(result.usage), quality)
        )

    def run_pass(fn: OcrFn, indices: list[int]) -> dict[int, Outcome]:
        return _run_pass(engine, fn, out, indices, sub_batch_size, oom, on_oom)

    out = second_looks(engine, out, policy, quality, run_pass)
    out = assess_rows(second_chances(engine, out, policy, run_pass, quality), quality)
    return [structure_row(r, partial(page_image, r), figures) for r in out]


def page_image(row: dict[str, Any]) -> Any:
    """The row's page image (PIL), decoded from the render stage's bytes."""
    return decode_page(row["image"], row["width_px"], row["height_px"], row["page_format"])


def second_looks(
    engine: Engine,
    out: list[dict[str, Any]],
    policy: PagePolicy,
    quality: QualityConfig,
    run_pass: Callable[[OcrFn, list[int]], dict[int, Outcome]],
) -> list[dict[str, Any]]:
    """Adaptive pruning (pipeline/stages/adaptive.py): the pages whose pruned attempt the model was unsure
    of, read again unpruned in one pass (so they batch), each keeping its better attempt."""
    pending = [i for i, r in enumerate(out) if needs_second_look(r, policy)]
    if not pending:
        return out
    from rtprune.api import PruneConfig

    results = run_pass(partial(engine.ocr, prune=PruneConfig(method="none")), pending)
    low = low_token_probability(quality)
    for i in pending:
        result = results[i]
        if isinstance(result, PageFailure):
            out[i] = with_second_look(out[i], None, None, policy)
            continue
        attempt = {
            "text": result.text,
            "finish_reason": result.usage.finish_reason,
            **confidence_columns(result.token_logprobs, low),
        }
        usage = usage_columns(result.usage, page_seconds(result.usage))
        out[i] = with_second_look(out[i], usage, attempt, policy)
    return out


def second_chances(
    engine: Engine,
    out: list[dict[str, Any]],
    policy: PagePolicy,
    run_pass: Callable[[OcrFn, list[int]], dict[int, Outcome]],
    quality: QualityConfig | None = None,
) -> list[dict[str, Any]]:
    """Retry the pages whose OCR ended in one of policy.retry_on, all failing pages together in each round
    (so they batch), with the plan's overrides; a page leaves the rounds once an attempt ends otherwise.
    Pages that never do fall back to their text layer. Every attempt's usage is added to its page."""
    pending = [i for i, r in enumerate(out) if needs_retry(r, policy)]
    last_reason = {i: out[i]["finish_reason"] for i in pending}
    for attempt in retry_plan(policy, engine.identity.prune_method):
        if not pending:
            break
        results = run_pass(partial(engine.ocr, prune=attempt.prune, temperature=attempt.temperature), pending)
        for i in pending:
            result = results[i]
            reason = "" if isinstance(result, PageFailure) else result.usage.finish_reason
            accepted = bool(reason) and reason not in policy.retry_on
            out[i] = with_attempt(out[i], result, accepted, quality)
            last_reason[i] = reason or last_reason[i]
        pending = [i for i in pending if out[i]["text_source"] == "ocr"]
    for i in pending:
        out[i] = fall_back(out[i], policy, last_reason[i])
    return out


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():  # frees the failed batch's blocks before the halves run
        torch.cuda.empty_cache()


class OcrStage:
    """Page rows in, OCR'd page rows (OCR_OUTPUT_SCHEMA: the page columns and the cropped figures) out. Loads the engine once per actor. Pages that loop or
    hit the token cap get the page policy's second chances (retries, text layer) inside the same call."""

    def __init__(
        self,
        engine: EngineConfig,
        sub_batch_size: int,
        policy: PagePolicy | None = None,
        figures: bool = True,
        quality: QualityConfig | None = None,
    ) -> None:
        import torch

        from rtprune.engines import create_engine

        self._engine = create_engine(engine)
        self._sub_batch_size = sub_batch_size
        self._policy = policy if policy is not None else PagePolicy()
        self._quality = quality if quality is not None else QualityConfig()
        self._oom = (torch.OutOfMemoryError,)
        self._figures = figures

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = ocr_pages(
            self._engine,
            from_batch(batch),
            self._sub_batch_size,
            self._oom,
            _empty_cuda_cache,
            self._policy,
            self._figures,
            self._quality,
        )
        return to_table(rows, OCR_OUTPUT_SCHEMA)
