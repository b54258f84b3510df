"""The compacted index of committed documents: what planning reads instead of every ledger record. Its
files (manifests, generation folders of bucket files, open-run markers) are laid out in paths.py.

The ledger stays the commit point. A run writes its `open` marker before its first commit and removes it
only after a compaction that holds all of its records has become the newest manifest; so the committed
set is always  index (newest manifest) + the records of open runs with a seq above the watermark.
A crash anywhere between a commit and the marker's removal leaves the marker, and the next planner (or
compaction) reads those records: nothing committed is lost, nothing is redone.

Buckets are contiguous doc_id ranges (doc_id is a hex hash, so they are even): a planner merges the input
with the index one range at a time. A compaction rewrites only the buckets its new records touch, and
doubles the bucket count when the average bucket outgrows `bucket_rows`."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.store import paths
from pipeline.store.output import Output, read_ledger

INDEX_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("content_hash", pa.string()),
        ("engine_config_hash", pa.string()),
        ("ok", pa.bool_()),
        ("run_id", pa.string()),
        ("seq", pa.int64()),
        ("committed_at", pa.string()),
    ]
)
# committed_at orders commits for readers (read_committed); files written before it had it read it as null.
KEY = ["doc_id", "content_hash", "engine_config_hash"]
_HEX = np.full(256, 0, dtype=np.uint64)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
    _HEX[ord(chr(_c).upper())] = _i


@dataclass(frozen=True)
class IndexState:
    gen: int
    nonce: str
    buckets: int
    files: dict[int, str] = field(default_factory=dict)  # bucket -> path under the output root
    watermark: dict[str, int] = field(default_factory=dict)  # run_id -> highest seq folded in
    rows: int = 0
    counts: dict[int, int] = field(default_factory=dict)  # bucket -> rows


def bucket_ids(doc_ids: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """The range bucket of each doc_id: its first 32 bits scaled to [0, buckets). Vectorised (no Python
    loop): 10 M ids take well under a second."""
    if len(doc_ids) == 0:
        return np.zeros(0, dtype=np.int64)
    head = pc.utf8_slice_codeunits(doc_ids, 0, 8)
    head = head.combine_chunks() if isinstance(head, pa.ChunkedArray) else head
    offsets = np.frombuffer(head.buffers()[1], dtype=np.int32)[head.offset : head.offset + len(head) + 1]
    data = np.frombuffer(head.buffers()[2], dtype=np.uint8)
    if not np.all(np.diff(offsets) == 8):  # not all ids are 8+ hex digits (never for doc_id_for's ids)
        values = np.array([int((s or "0")[:8].ljust(8, "0"), 16) for s in head.to_pylist()], dtype=np.uint64)
    else:
        digits = _HEX[data[offsets[0] : offsets[-1]]].reshape(-1, 8)
        values = (digits << (np.arange(7, -1, -1, dtype=np.uint64) * 4)).sum(axis=1, dtype=np.uint64)
    return ((values * np.uint64(buckets)) >> np.uint64(32)).astype(np.int64)


def records_table(records: list[dict[str, Any]]) -> pa.Table:
    """Ledger records (oldest first) -> one INDEX_SCHEMA row per committed document."""
    cols: dict[str, list[Any]] = {f.name: [] for f in INDEX_SCHEMA}
    for rec in records:
        for doc in rec["documents"]:
            cols["doc_id"].append(doc["doc_id"])
            cols["content_hash"].append(doc["content_hash"])
            cols["engine_config_hash"].append(rec["engine_config_hash"])
            cols["ok"].append(bool(doc.get("ok", True)))
            cols["run_id"].append(rec["run_id"])
            cols["seq"].append(int(rec["seq"]))
            cols["committed_at"].append(rec["committed_at"])
    return pa.table(cols, schema=INDEX_SCHEMA)


def latest_per_key(table: pa.Table, keys: list[str] = KEY) -> pa.Table:
    """One row per key: the last one (rows are oldest first, so the newest commit wins), sorted by doc_id."""
    if table.num_rows == 0:
        return table
    ordinal = pa.array(np.arange(table.num_rows, dtype=np.int64))
    last = (
        table.select(keys)
        .append_column("_i", ordinal)
        .group_by(keys, use_threads=False)
        .aggregate([("_i", "max")])
    )
    # taken in their original order, so rows of one doc_id stay oldest first (the sort is stable)
    return table.take(np.sort(last["_i_max"].to_numpy())).sort_by("doc_id")


def load_index(out: Output) -> IndexState | None:
    """The newest manifest (one listing + one read), or None before the first compaction."""
    manifests = out.glob(paths.INDEX_MANIFEST_GLOB)
    if not manifests:
        return None
    data = json.loads(out.fs.cat_file(manifests[-1]))
    return IndexState(
        data["gen"],
        data["nonce"],
        data["buckets"],
        {int(b): f for b, f in data["files"].items()},
        dict(data["watermark"]),
        data["rows"],
        {int(b): n for b, n in data["counts"].items()},
    )


def read_bucket(
    out: Output,
    state: IndexState | None,
    bucket: int,
    engine_config_hash: str | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """One index range; only the rows of engine_config_hash and only `columns` when given (both applied while
    reading: planning reads ranges of millions of rows and needs three of the columns)."""
    if state is None or bucket not in state.files:
        table = INDEX_SCHEMA.empty_table()
        return table.select(columns) if columns is not None else table
    filters = [("engine_config_hash", "==", engine_config_hash)] if engine_config_hash is not None else None
    return pq.read_table(
        io.BytesIO(out.fs.cat_file(out.path(state.files[bucket]))),
        schema=INDEX_SCHEMA,
        columns=columns,
        filters=filters,
    )


def mark_open(out: Output, run_id: str) -> None:
    """Before a run's first commit: its records are not in the index until a compaction says so."""
    out.put_atomic(out.path(paths.open_key(run_id)), datetime.now(UTC).isoformat().encode())


def open_runs(out: Output) -> list[str]:
    try:
        names = out.fs.ls(out.path(paths.OPEN_DIR), detail=False)
    except FileNotFoundError:
        return []
    return sorted(paths.open_run(n) for n in names if not n.endswith(".tmp"))


def open_since(out: Output, run_id: str) -> datetime:
    return datetime.fromisoformat(out.fs.cat_file(out.path(paths.open_key(run_id))).decode())


def read_records(out: Output, ledger: list[str]) -> list[dict[str, Any]]:
    return [json.loads(out.fs.cat_file(p)) for p in ledger]


def run_records(out: Output, run_id: str, after_seq: int = -1) -> list[dict[str, Any]]:
    """One run's ledger records with seq > after_seq: one listing, one read per new record."""
    listing = out.glob(paths.run_ledger_glob(run_id))
    return read_records(out, [p for p in listing if paths.ledger_seq(p) > after_seq])


def last_seq(out: Output, run_id: str) -> int:
    """Highest committed seq of a run (-1 if none): a resumed run_id continues after it."""
    return max((paths.ledger_seq(p) for p in out.glob(paths.run_ledger_glob(run_id))), default=-1)


def pending_records(out: Output, state: IndexState | None) -> list[dict[str, Any]]:
    """Committed records the index does not hold, oldest first. Before the first compaction that is the
    whole ledger (an output written before the index existed); after it, the open runs' newer records."""
    if state is None:
        return read_ledger(out)
    records = [r for run in open_runs(out) for r in run_records(out, run, state.watermark.get(run, -1))]
    return sorted(records, key=lambda r: (r["committed_at"], r["run_id"], r["seq"]))


def committed_table(out: Output, ledger: list[str]) -> pa.Table:
    """Every committed document (INDEX_SCHEMA): the index plus the ledger records it does not hold,
    oldest commit first by (committed_at, run_id, seq) as read_ledger orders records (index rows written
    without committed_at first). `ledger` is a listing of the ledger: a record above its run's watermark
    is read whether or not its run is open, so a reader also sees commits made without the open marker."""
    state = load_index(out)
    tables = [read_bucket(out, state, b) for b in sorted(state.files)] if state else []
    watermark = state.watermark if state else {}
    records = read_records(
        out, [p for p in ledger if paths.ledger_seq(p) > watermark.get(paths.run_of(p), -1)]
    )
    table = pa.concat_tables([*tables, records_table(records)])
    table = table.set_column(
        table.schema.get_field_index("committed_at"), "committed_at", pc.fill_null(table["committed_at"], "")
    )
    return table.take(
        pc.sort_indices(table, [("committed_at", "ascending"), ("run_id", "ascending"), ("seq", "ascending")])
    )


def committed_parts(out: Output, latest_only: bool) -> list[tuple[str, pa.Array | None]]:
    """The part files a reader needs, oldest commit first, each with the doc_ids to keep from it (None:
    all): one listing of the ledger, the index, and only the records the index does not hold. latest_only
    keeps each (doc_id, engine config)'s newest commit; otherwise every ledgered part."""
    ledger = out.glob(paths.LEDGER_GLOB)
    committed = committed_table(out, ledger)
    part_keys = ["committed_at", "run_id", "seq"]
    if latest_only:
        latest = latest_per_key(committed, ["doc_id", "engine_config_hash"])
        parts = latest.group_by(part_keys, use_threads=False).aggregate([("doc_id", "list")])
        parts = parts.sort_by([(k, "ascending") for k in part_keys])
        return [
            (out.part_path(run, seq), pa.array(ids, pa.string()))
            for run, seq, ids in zip(
                parts["run_id"].to_pylist(),
                parts["seq"].to_pylist(),
                parts["doc_id_list"].to_pylist(),
                strict=True,
            )
        ]
    known = committed.group_by(["run_id", "seq"], use_threads=False).aggregate([("committed_at", "max")])
    when = dict(
        zip(
            zip(known["run_id"].to_pylist(), known["seq"].to_pylist(), strict=True),
            known["committed_at_max"].to_pylist(),
            strict=True,
        )
    )
    names = [(paths.run_of(p), paths.ledger_seq(p)) for p in ledger]
    ledgered = sorted((when.get((run, seq), ""), run, seq) for run, seq in names)
    return [(out.part_path(run, seq), None) for _, run, seq in ledgered]
