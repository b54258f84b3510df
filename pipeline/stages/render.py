"""The render step for whole documents: read bytes, rasterize in isolation, emit one row per page
(or one error row for a document that cannot be listed, read or opened); RenderStage, its Ray Data class."""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa

from pipeline.config import PipelineConfig, RenderConfig, StorageConfig
from pipeline.redact import describe_error
from pipeline.stages.isolation import IsolatedRenderer
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
from pipeline.store.retry import retry


def _read(doc: dict[str, Any], storage: StorageConfig, cfg: RenderConfig) -> bytes | PageFailure:
    """The document's bytes, or why it was not read: over the byte cap (the render stage's limit) or a
    storage error (the read's)."""
    if doc["size_bytes"] > cfg.max_bytes:  # refuse before reading: the cap bounds actor memory
        return PageFailure("render", f"too large: {doc['size_bytes']} bytes > max_bytes {cfg.max_bytes}")
    try:
        return retry(lambda: read_bytes(doc["uri"], storage))
    except Exception as exc:  # any storage failure is this document's error, not the job's
        return PageFailure("read", "read failed: " + describe_error(exc, storage.secrets()))


def render_document(
    doc: dict[str, Any],
    renderer: IsolatedRenderer,
    storage: StorageConfig,
    stamp: RunStamp,
    cfg: RenderConfig,
) -> list[dict[str, Any]]:
    """Rows for one document. render_s of each page is its equal share of the document's render time."""
    if doc.get("error"):  # the listing already knows it cannot be read: say so at the stage that found it
        return [mark_error(new_row(stamp, doc, -1, -1), "list", doc["error"])]
    data = _read(doc, storage, cfg)
    if isinstance(data, PageFailure):
        return [mark_error(new_row(stamp, doc, -1, -1), data)]
    start = time.perf_counter()
    outcome = renderer.render(data)
    elapsed_s = time.perf_counter() - start
    if outcome.error:
        row = new_row(stamp, doc, -1, outcome.page_count)
        return [mark_error({**row, "render_s": elapsed_s, "cpu_s": elapsed_s}, "render", outcome.error)]
    share_s = elapsed_s / len(outcome.pages)
    rows = []
    for i, page in enumerate(outcome.pages):
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
        )
        rows.append(mark_error(row, "render", page.error) if page.error else row)
    return rows


class RenderStage:
    """Documents in, page rows (with PNG/raw page images) out. One isolated renderer child per actor."""

    def __init__(self, cfg: PipelineConfig, stamp: RunStamp) -> None:
        self._cfg = cfg
        self._stamp = stamp
        self._renderer = IsolatedRenderer(cfg.render)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows: list[dict[str, Any]] = []
        for doc in from_batch(batch):
            rows += render_document(doc, self._renderer, self._cfg.storage, self._stamp, self._cfg.render)
        return to_table(rows, RENDERED_SCHEMA)
