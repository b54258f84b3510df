"""Readers of committed output: the page rows of ledgered parts and the runs' summaries. These are the only
way outputs are read (the export job, the cost report, the tests); what is committed is decided by the
ledger and the index (pipeline/store/output.py, pipeline/store/index.py)."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.config import StorageConfig
from pipeline.schema import PAGES_SCHEMA, conform
from pipeline.store import paths
from pipeline.store.index import committed_parts
from pipeline.store.output import Output
from pipeline.summary import RunSummary


def read_committed(
    output_uri: str, storage_options: StorageConfig | dict[str, Any] | None = None, latest_only: bool = True
) -> pa.Table:
    """Committed page rows, oldest commit first. latest_only: each document's newest commit per engine
    config (every page once); False: every committed row of every run (what was paid for, superseded
    versions included). Which parts and rows come from the index plus pending records (index.py), so a
    reader does not read every ledger record ever written; it reads the parts it returns."""
    out = Output.open(output_uri, storage_options)
    tables = []
    for path, doc_ids in committed_parts(out, latest_only):
        # Parts written before a schema change lack its new columns: conform fills them.
        table = conform(pq.read_table(io.BytesIO(out.fs.cat_file(path))))
        if doc_ids is not None:
            table = table.filter(pc.is_in(table["doc_id"], value_set=doc_ids))
        tables.append(table)
    return pa.concat_tables(tables) if tables else PAGES_SCHEMA.empty_table()


def read_summaries(
    output_uri: str, storage_options: StorageConfig | dict[str, Any] | None = None
) -> list[RunSummary]:
    """Every finished run's summary, oldest first."""
    out = Output.open(output_uri, storage_options)
    summaries = [RunSummary.model_validate_json(out.fs.cat_file(p)) for p in out.glob(paths.SUMMARY_GLOB)]
    return sorted(summaries, key=lambda s: s.started_at)
