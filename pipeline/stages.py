"""Ray Data stage classes: convert a batch to row records, call one function, convert back."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipeline.config import PagePolicy, PipelineConfig
from pipeline.isolation import IsolatedRenderer
from pipeline.ocr import ocr_pages
from pipeline.rasterize import render_document
from pipeline.rows import RENDERED_SCHEMA, RunStamp, from_batch, to_table
from pipeline.schema import PAGES_SCHEMA
from rtprune.engines.types import EngineConfig


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


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():  # frees the failed batch's blocks before the halves run
        torch.cuda.empty_cache()


class OcrStage:
    """Page rows in, OCR'd page rows (PAGES_SCHEMA) out. Loads the engine once per actor. Pages that loop or
    hit the token cap get the page policy's second chances (retries, text layer) inside the same call."""

    def __init__(self, engine: EngineConfig, sub_batch_size: int, policy: PagePolicy | None = None) -> None:
        import torch

        from rtprune.engines import create_engine

        self._engine = create_engine(engine)
        self._sub_batch_size = sub_batch_size
        self._policy = policy if policy is not None else PagePolicy()
        self._oom = (torch.OutOfMemoryError,)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = ocr_pages(
            self._engine, from_batch(batch), self._sub_batch_size, self._oom, _empty_cuda_cache, self._policy
        )
        return to_table(rows, PAGES_SCHEMA)
