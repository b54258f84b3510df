"""Folding committed ledger records into the index (pipeline/store/index.py): at the end of each run, and by
`python -m jobs.compact`. Idempotent: folding a record twice leaves the same index."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from pipeline.store import paths
from pipeline.store.index import (
    IndexState,
    bucket_ids,
    last_seq,
    latest_per_key,
    load_index,
    open_runs,
    open_since,
    pending_records,
    read_bucket,
    records_table,
    run_records,
)
from pipeline.store.output import Output, parquet_bytes

log = logging.getLogger("pipeline")
_KEEP_MANIFESTS = 3  # a planner that loaded a slightly older manifest can still read its files


def compact(
    out: Output, bucket_rows: int = 1_000_000, close: tuple[str, ...] = (), stale_after_s: float | None = None
) -> IndexState | None:
    """Fold every pending record into a new index generation, then remove the `open` markers of `close`
    (finished runs) and, with stale_after_s, of runs whose marker and newest record are older than that
    (crashed runs). A marker goes only when the newest manifest is this one and holds all the run's
    records, so a concurrent compaction that overwrote ours leaves the marker for the next one."""
    state = load_index(out)
    records = pending_records(out, state)
    if records:
        state = _fold(out, state, records, bucket_rows)
        log.info(
            "index generation %d: folded %d ledger records (%d index rows in %d buckets)",
            state.gen,
            len(records),
            state.rows,
            state.buckets,
        )
    runs = list(close) + (_stale_runs(out, stale_after_s) if stale_after_s is not None else [])
    newest = load_index(out)
    if runs and state is not None and newest is not None and newest.nonce == state.nonce:
        for run in runs:
            if last_seq(out, run) <= state.watermark.get(run, -1):
                with contextlib.suppress(FileNotFoundError):  # a run that never committed has none
                    out.fs.rm_file(out.path(paths.open_key(run)))
    _collect_garbage(out)
    return state


def _stale_runs(out: Output, stale_after_s: float) -> list[str]:
    now = datetime.now(UTC)
    stale = []
    for run in open_runs(out):
        newest = max(
            [datetime.fromisoformat(r["committed_at"]) for r in run_records(out, run)],
            default=open_since(out, run),
        )
        if (now - max(newest, open_since(out, run))).total_seconds() >= stale_after_s:
            stale.append(run)
    return stale


def _fold(out: Output, state: IndexState | None, records: list[dict], bucket_rows: int) -> IndexState:
    return fold_table(out, state, records_table(records), bucket_rows)


def fold_table(out: Output, state: IndexState | None, new: pa.Table, bucket_rows: int) -> IndexState:
    """Fold INDEX_SCHEMA rows (oldest first) into a new index generation; returns it."""
    old_buckets = state.buckets if state else 1
    counts = dict(state.counts) if state else {}
    rows = sum(counts.values()) + new.num_rows
    factor = 1
    while rows / (old_buckets * factor) > 2 * bucket_rows:  # keep buckets small enough to merge in memory
        factor *= 2
    buckets = old_buckets * factor
    gen, nonce = (state.gen + 1 if state else 1), uuid.uuid4().hex[:8]
    files = dict(state.files) if state and factor == 1 else {}
    counts = counts if factor == 1 else {}
    new_bucket = bucket_ids(new["doc_id"], old_buckets)
    touched = range(old_buckets) if factor > 1 else np.unique(new_bucket).tolist()
    for b in touched:
        part = latest_per_key(
            pa.concat_tables([read_bucket(out, state, b), new.filter(pa.array(new_bucket == b))])
        )
        sub = bucket_ids(part["doc_id"], buckets) if factor > 1 else np.full(part.num_rows, b)
        for j in range(b * factor, (b + 1) * factor):
            piece = part.filter(pa.array(sub == j)) if factor > 1 else part
            if piece.num_rows:
                files[j] = paths.index_bucket_key(gen, nonce, j)
                counts[j] = piece.num_rows
                out.put_atomic(out.path(files[j]), parquet_bytes(piece))
    watermark = dict(state.watermark) if state else {}
    for run_id, seq in zip(new["run_id"].to_pylist(), new["seq"].to_pylist(), strict=True):
        watermark[run_id] = max(seq, watermark.get(run_id, -1))
    manifest = {
        "gen": gen,
        "nonce": nonce,
        "buckets": buckets,
        "files": {str(b): f for b, f in files.items()},
        "counts": {str(b): n for b, n in counts.items()},
        "watermark": watermark,
        "rows": sum(counts.values()),
        "written_at": datetime.now(UTC).isoformat(),
    }
    out.put_atomic(out.path(paths.index_manifest_key(gen)), json.dumps(manifest, sort_keys=True).encode())
    return IndexState(gen, nonce, buckets, files, watermark, sum(counts.values()), counts)


def _collect_garbage(out: Output) -> None:
    """Drop manifests older than the newest few and index files no kept manifest names."""
    manifests = out.glob(paths.INDEX_MANIFEST_GLOB)
    if len(manifests) <= _KEEP_MANIFESTS:
        return
    kept = manifests[-_KEEP_MANIFESTS:]
    oldest_kept = paths.index_gen(kept[0])
    for path in manifests[:-_KEEP_MANIFESTS]:
        out.fs.rm_file(path)
    live = {
        out.path(paths.index_folder_of(f))
        for m in kept
        for f in json.loads(out.fs.cat_file(m))["files"].values()
    }
    for folder in out.glob(paths.INDEX_FOLDER_GLOB):
        gen = paths.index_gen(folder)
        # younger folders may belong to a compaction still writing its manifest
        if gen < oldest_kept and folder not in live:
            out.fs.rm(folder, recursive=True)
