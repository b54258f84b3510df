"""The render step for whole documents: read bytes, rasterize in isolation (routing pages to their text
layer when PipelineConfig.routing says so), emit one row per page (or one error row for a document that
cannot be listed, read or opened); RenderStage, its Ray Data class."""

from __future__ import annotations

import functools
import time
from typing import Any

import pyarrow as pa

from pipeline.config import PipelineConfig, RenderConfig, StorageConfig
from pipeline.redact import describe_error
from pipeline.routing_config import RoutingConfig
from pipeline.stages.isolation import IsolatedRenderer, RenderFn
from pipeline.stages.rasterizer import RenderedPage, render_pdf
from pipeline.stages.routed_render import render_routed_pdf, route_columns
from pipeline.stages.rows import (
    RENDERED_SCHEMA,
    PageFailure,
    RunStamp,
    from_batch,
    mark_error,
    new_row,
    to_table,
)
from pipeline.store.fs import read_bytes
from pipeline.store.retry import retry, with_deadline


def read_document(
    uri: str, size_bytes: int, storage: StorageConfig, cfg: RenderConfig
) -> bytes | PageFailure:
    """The document's bytes, or why it was not read: over the byte cap (the render stage's limit), a
    storage error or no answer within render.document_read_timeout_s (the read's). The cap holds while
    reading too: the listing's size may be stale (the file grew) or meaningless (a device lists as 0 bytes)."""
    if size_bytes > cfg.max_bytes:  # refuse before reading: the cap bounds actor memory
        return PageFailure("render", f"too large: {size_bytes} bytes > max_bytes {cfg.max_bytes}")
    try:
        data = with_deadline(
            lambda: retry(lambda: read_bytes(uri, storage, cfg.max_bytes)),
            cfg.document_read_timeout_s,
            "render.document_read_timeout_s",
        )
    except Exception as exc:  # any storage failure is this document's error, not the job's
        return PageFailure("read", "read failed: " + describe_error(exc, storage.secrets()))
    if len(data) > cfg.max_bytes:
        return PageFailure(
            "render",
            f"too large: more than max_bytes {cfg.max_bytes} (read stopped there; the listing said "
            f"{size_bytes} bytes)",
        )
    return data


def render_document(
    doc: dict[str, Any],
    renderer: IsolatedRenderer,
    storage: StorageConfig,
    stamp: RunStamp,
    cfg: RenderConfig,
) -> list[dict[str, Any]]:
    """Rows for one document. render_s of each page is its share of the document's render time: in
    proportion to the time the child measured for it (a page routed to its text layer costs far less than
    one rasterized), or an equal share when the child measured none (routing off)."""
    if doc.get("error"):  # the listing already knows it cannot be read: say so at the stage that found it
        return [mark_error(new_row(stamp, doc, -1, -1), "list", doc["error"])]
    data = read_document(doc["uri"], doc["size_bytes"], storage, cfg)
    if isinstance(data, PageFailure):
        return [mark_error(new_row(stamp, doc, -1, -1), data)]
    start = time.perf_counter()
    outcome = renderer.render(data)
    elapsed_s = time.perf_counter() - start
    if outcome.error:
        row = new_row(stamp, doc, -1, outcome.page_count)
        return [mark_error({**row, "render_s": elapsed_s, "cpu_s": elapsed_s}, "render", outcome.error)]
    rows = []
    for i, (page, share_s) in enumerate(
        zip(outcome.pages, time_shares(outcome.pages, elapsed_s), strict=True)
    ):
        row = new_row(stamp, doc, i, outcome.page_count)
        row.update(
            render_s=share_s,
            cpu_s=share_s,
            image=page.data,
            width_px=page.width_px,
            height_px=page.height_px,
            page_format=cfg.page_format,
            width_pt=page.width_pt,
            height_pt=page.height_pt,
            text_layer=page.text_layer,
            **route_columns(page),
        )
        rows.append(mark_error(row, "render", page.error) if page.error else row)
    return rows


def time_shares(pages: list[RenderedPage], elapsed_s: float) -> list[float]:
    """elapsed_s split among the pages by their measured work_s, or evenly when any is unmeasured."""
    measured = sum(p.work_s for p in pages)
    if measured <= 0 or any(p.work_s <= 0 for p in pages):
        return [elapsed_s / len(pages)] * len(pages)
    return [elapsed_s * p.work_s / measured for p in pages]


def render_function(routing: RoutingConfig) -> RenderFn:
    """What the render child runs: render_pdf, or with the router when routing is on."""
    if routing.mode == "ocr":
        return render_pdf
    return functools.partial(render_routed_pdf, routing=routing)


class RenderStage:
    """Documents in, page rows (with PNG/raw page images) out. One isolated renderer child per actor."""

    def __init__(self, cfg: PipelineConfig, stamp: RunStamp) -> None:
        self._cfg = cfg
        self._stamp = stamp
        self._renderer = IsolatedRenderer(cfg.render, render_function(cfg.routing))

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows: list[dict[str, Any]] = []
        for doc in from_batch(batch):
            rows += render_document(doc, self._renderer, self._cfg.storage, self._stamp, self._cfg.render)
        return to_table(rows, RENDERED_SCHEMA)
