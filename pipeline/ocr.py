"""The OCR step for a batch of page rows: cost-sorted sub-batches, OOM splitting, per-page isolation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from pipeline.redact import describe_error
from pipeline.render import decode_page
from pipeline.rows import mark_error

T = TypeVar("T")
R = TypeVar("R")


class Engine(Protocol):  # what the pipeline uses of rtprune.engines.hf.OcrEngine
    model_id: str
    model_mode: str
    prune_method: str
    prune_config_hash: str

    def ocr(self, images: list[Any]) -> list[Any]: ...
    def visual_tokens(self, width_px: int, height_px: int) -> int: ...


def run_resilient(fn: Callable[[list[T]], list[R]], items: list[T], oom: tuple[type[BaseException], ...],
                  on_oom: Callable[[], None] = lambda: None) -> list[R | str]:
    """fn over items; a str in the result is that item's error. Out of memory: split in halves down to
    single items (smaller batches fit). Any other batch failure: retry items one by one, so only the
    item that really fails becomes an error."""
    try:
        results = fn(items)
        if len(results) != len(items):
            raise RuntimeError(f"engine returned {len(results)} results for {len(items)} pages")
        return list(results)
    except oom as exc:
        on_oom()
        if len(items) == 1:
            return ["out of memory on a single page: " + describe_error(exc)]
        mid = len(items) // 2
        return run_resilient(fn, items[:mid], oom, on_oom) + run_resilient(fn, items[mid:], oom, on_oom)
    except Exception as exc:  # a page the model cannot handle must not take its batch down
        if len(items) == 1:
            return [describe_error(exc)]
        return [r for item in items for r in run_resilient(fn, [item], oom, on_oom)]


def cost_sorted_batches(costs: Sequence[int], size: int) -> list[list[int]]:
    """Indices grouped into batches of `size` pages of similar cost, so little padding is wasted."""
    order = sorted(range(len(costs)), key=lambda i: costs[i])
    return [order[k:k + size] for k in range(0, len(order), size)]


def _with_result(row: dict[str, Any], result: Any, engine: Engine) -> dict[str, Any]:
    u = result.usage
    return {**row, "text": result.text, "finish_reason": u.finish_reason, "model_id": engine.model_id,
            "model_mode": engine.model_mode, "prune_method": engine.prune_method,
            "prune_config_hash": engine.prune_config_hash, "visual_tokens": u.visual_tokens,
            "visual_tokens_kept": u.visual_tokens_kept, "prompt_tokens": u.prompt_tokens,
            "output_tokens": u.output_tokens, "encode_s": u.encode_s, "prune_s": u.prune_s,
            "prefill_s": u.prefill_s, "decode_s": u.decode_s, "gpu_s": u.gpu_s}


def _decode(rows: list[dict[str, Any]], indices: list[int]) -> tuple[list[int], list[Any], dict[int, str]]:
    """(indices decoded, their images, {index: reason} for pages whose image does not decode)."""
    done, images, failed = [], [], {}
    for i in indices:
        r = rows[i]
        try:
            images.append(decode_page(r["image"], r["width_px"], r["height_px"], r["page_format"]))
            done.append(i)
        except Exception as exc:  # a page image that does not decode fails alone
            failed[i] = "cannot decode page image: " + describe_error(exc)
    return done, images, failed


def ocr_pages(engine: Engine, rows: list[dict[str, Any]], sub_batch_size: int,
              oom: tuple[type[BaseException], ...], on_oom: Callable[[], None] = lambda: None) -> list[dict[str, Any]]:
    """OCR every ok row (error rows pass through untouched); returns rows in input order. The next
    sub-batch's images are decoded on a thread while the engine runs the current one (PIL releases the
    GIL while decoding): PNG decoding costs ~14 ms a page, a real share of a fast engine's time."""
    out = list(rows)
    todo = [i for i, r in enumerate(rows) if r["status"] == "ok"]
    costs = [engine.visual_tokens(rows[i]["width_px"], rows[i]["height_px"]) for i in todo]
    batches = [[todo[k] for k in b] for b in cost_sorted_batches(costs, sub_batch_size)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        pending = pool.submit(_decode, rows, batches[0]) if batches else None
        for n in range(len(batches)):
            indices, images, failed = pending.result()
            if n + 1 < len(batches):
                pending = pool.submit(_decode, rows, batches[n + 1])
            for i, reason in failed.items():
                out[i] = mark_error(rows[i], "ocr", reason)
            results = run_resilient(engine.ocr, images, oom, on_oom) if images else []
            for i, result in zip(indices, results, strict=True):
                out[i] = mark_error(rows[i], "ocr", result) if isinstance(result, str) else _with_result(rows[i], result, engine)
    return out
