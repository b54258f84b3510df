"""Planning in bounded driver memory: (listed documents) minus (committed documents) as a sorted merge in
doc_id ranges.

1. The input streams in (listing pages, URI-list chunks, or a Ray Data read of an inventory) and is spilled
   to local Parquet files, one per doc_id range ("bucket"), a chunk of `spill_rows` at a time.
2. Bucket by bucket: the input rows of the range, minus the committed keys of the same range (the index
   bucket that covers it plus pending ledger records), give that range's to-do rows.
3. The to-do rows are written to one local Parquet file per range; todo_blocks re-cuts them into Ray Data
   blocks as the pipeline puts them into the object store. The driver never holds more than one spill
   chunk, one bucket or one block.

Why a merge in ranges and not a Ray Data join: doc_id is a uniform hash, so fixed ranges are balanced
without sampling; the committed side is already range-partitioned (the index), so one index file serves
many input ranges; and both sides of one range fit in memory by construction, so pyarrow's hash join
does each range in milliseconds. A Ray Data join would shuffle both sides (the 5 M-row history included)
through the object store on every run; docs/pipeline.md has the measurements."""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.config import PipelineConfig
from pipeline.store.entries import ListingNotes
from pipeline.store.index import (
    IndexState,
    bucket_ids,
    last_seq,
    latest_per_key,
    load_index,
    open_runs,
    pending_records,
    read_bucket,
    records_table,
)
from pipeline.store.inventory import is_inventory, read_inventory
from pipeline.store.listing import DOC_SCHEMA, iter_documents, refs_table
from pipeline.store.output import Output, clean_run_orphans

log = logging.getLogger("pipeline")
PLAN_COLUMNS = ["doc_id", "content_hash", "ok"]  # what the merge reads of the committed side
MAX_BLOCKS = 10_000  # Ray Data blocks of the to-do set: one document each for small runs, as before


@dataclass
class Plan:
    listed: int = 0
    skipped: int = 0  # already committed (or committed with errors, without retry_failed)
    todo: int = 0
    todo_bytes: int = 0
    inputs_skipped: int = 0  # entries the listing left out and said so (pipeline/store/entries.py)
    first_seq: int = 0
    pending_records: int = 0  # ledger records planning read beside the index
    index_gen: int = 0  # 0: no index yet
    todo_files: list[str] = field(
        default_factory=list
    )  # local Parquet files, DOC_SCHEMA, one per doc_id range
    rows_per_block: int = 1  # Ray Data block size of the hand-off (todo_blocks)
    scratch: str = ""

    def estimated_pages(self, bytes_per_page: int) -> int:
        return max(self.todo, math.ceil(self.todo_bytes / bytes_per_page)) if self.todo else 0

    def cleanup(self) -> None:
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


class BucketSpill:
    """DOC_SCHEMA tables -> one local Parquet file per doc_id range, buffering at most spill_rows rows."""

    def __init__(self, folder: str, buckets: int, spill_rows: int) -> None:
        self.folder, self.buckets, self._spill_rows = folder, buckets, spill_rows
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._writers: dict[int, pq.ParquetWriter] = {}

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self._buffer.append(table)
            self._buffered += table.num_rows
        if self._buffered >= self._spill_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer).combine_chunks()
        self._buffer, self._buffered = [], 0
        bucket = bucket_ids(table["doc_id"], self.buckets)
        order = np.argsort(bucket, kind="stable")
        table, bucket = table.take(pa.array(order)), bucket[order]
        starts = np.searchsorted(bucket, np.arange(self.buckets + 1))
        for b in np.flatnonzero(np.diff(starts)).tolist():
            if b not in self._writers:
                self._writers[b] = pq.ParquetWriter(self._path(b), DOC_SCHEMA)
            self._writers[b].write_table(table.slice(starts[b], starts[b + 1] - starts[b]))

    def close(self) -> list[int]:
        """Flush and close; returns the non-empty buckets."""
        self._flush()
        for writer in self._writers.values():
            writer.close()
        return sorted(self._writers)

    def read(self, bucket: int) -> pa.Table:
        return pq.read_table(self._path(bucket), schema=DOC_SCHEMA)

    def _path(self, bucket: int) -> str:
        return os.path.join(self.folder, f"in-{bucket:05d}.parquet")


def input_tables(cfg: PipelineConfig, notes: ListingNotes | None = None) -> Iterator[pa.Table]:
    """The input as DOC_SCHEMA tables, streamed (listing pages, or an inventory's Ray Data blocks);
    entries a listing left out are counted in notes."""
    if is_inventory(cfg.input, cfg.input_kind):
        ds = read_inventory(cfg.input, cfg.storage, cfg.inventory_columns, glob=cfg.input_glob)
        yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")
        return
    pages = iter_documents(
        cfg.input, cfg.storage, cfg.plan.list_threads, kind=cfg.input_kind, glob=cfg.input_glob, notes=notes
    )
    for refs in pages:
        yield refs_table(refs)


def plan_run(cfg: PipelineConfig, out: Output, engine_config_hash: str, read_only: bool = False) -> Plan:
    """What this run must process. read_only (--plan-only) writes nothing to the output."""
    state = load_index(out)
    pending = pending_records(out, state)
    if not read_only:
        for run in open_runs(out):
            removed = clean_run_orphans(out, run, cfg.orphan_grace_s)
            if removed:
                log.info("removed %d orphan part files of run %s", len(removed), run)
    buckets = max(cfg.plan.buckets, state.buckets if state else 1)
    if cfg.plan.scratch_dir:
        os.makedirs(cfg.plan.scratch_dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f"plan-{cfg.run_id}-", dir=cfg.plan.scratch_dir or None)
    plan = Plan(
        first_seq=last_seq(out, cfg.run_id) + 1,
        pending_records=len(pending),
        index_gen=state.gen if state else 0,
        scratch=scratch,
    )
    try:
        spill = BucketSpill(scratch, buckets, cfg.plan.spill_rows)
        notes = ListingNotes()
        for table in input_tables(cfg, notes):
            spill.add(table)
        nonempty = spill.close()
        plan.inputs_skipped = notes.skipped
        _merge(cfg, out, state, spill, nonempty, pending, engine_config_hash, plan)
    except BaseException:
        plan.cleanup()
        raise
    return plan


def _merge(
    cfg: PipelineConfig,
    out: Output,
    state: IndexState | None,
    spill: BucketSpill,
    nonempty: list[int],
    pending: list[dict],
    engine_config_hash: str,
    plan: Plan,
) -> None:
    tail = records_table(pending)
    tail = tail.filter(pc.equal(tail["engine_config_hash"], engine_config_hash)).select(PLAN_COLUMNS)
    tail_bucket = bucket_ids(tail["doc_id"], spill.buckets)
    index_buckets = state.buckets if state else 1
    cached: tuple[int, pa.Table, np.ndarray] | None = None
    per_bucket: list[str] = []
    for b in nonempty:
        j = b * index_buckets // spill.buckets
        if cached is None or cached[0] != j:
            rows = read_bucket(out, state, j, engine_config_hash, PLAN_COLUMNS)
            cached = (j, rows, bucket_ids(rows["doc_id"], spill.buckets))
        _, rows, sub = cached
        committed = pa.concat_tables(
            [rows.filter(pa.array(sub == b)), tail.filter(pa.array(tail_bucket == b))]
        )
        inv = latest_per_key(spill.read(b), ["doc_id"])
        todo = todo_rows(inv, committed, cfg.retry_failed)
        plan.listed += inv.num_rows
        plan.todo += todo.num_rows
        plan.todo_bytes += int(pc.sum(todo["size_bytes"]).as_py() or 0)
        if todo.num_rows:
            per_bucket.append(os.path.join(spill.folder, f"todo-{b:05d}.parquet"))
            pq.write_table(todo, per_bucket[-1])
    plan.skipped = plan.listed - plan.todo
    plan.todo_files = per_bucket
    plan.rows_per_block = max(1, math.ceil(plan.todo / MAX_BLOCKS))


def todo_rows(listed: pa.Table, committed: pa.Table, retry_failed: bool) -> pa.Table:
    """Listed documents whose (doc_id, content_hash) has no commit under this engine config; with
    retry_failed also those whose newest such commit had error rows."""
    done = latest_per_key(committed, ["doc_id", "content_hash"])
    if retry_failed:
        done = done.filter(done["ok"])
    if done.num_rows == 0:
        return listed
    keys = done.select(["doc_id", "content_hash"])
    return listed.join(keys, keys=["doc_id", "content_hash"], join_type="left anti").sort_by("doc_id")


def todo_blocks(plan: Plan) -> Iterator[pa.Table]:
    """The to-do rows in blocks of plan.rows_per_block (at most MAX_BLOCKS blocks), read from the range
    files one at a time. Cut here rather than written as one file per block: thousands of tiny Parquet
    writes and reads were most of the driver's planning time."""
    buffer: list[pa.Table] = []
    buffered, size = 0, plan.rows_per_block
    for path in plan.todo_files:
        buffer.append(pq.read_table(path, schema=DOC_SCHEMA))
        buffered += buffer[-1].num_rows
        if buffered >= size:
            table = pa.concat_tables(buffer)
            whole = (table.num_rows // size) * size
            for start in range(0, whole, size):
                yield table.slice(start, size)
            buffer, buffered = [table.slice(whole)], table.num_rows - whole
    if buffered:
        yield pa.concat_tables(buffer)
