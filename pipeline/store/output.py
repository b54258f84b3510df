"""The output root and the commit protocol: a part's figures are written first, then its part file, then
its ledger record (the commit point, atomically). The layout of the root is pipeline/store/paths.py's.

A part file and its figure folder exist for readers only once their ledger record does, so a crash leaves
at most orphan part files and figures (ignored, later cleaned) and never half a commit. Reading committed
output is pipeline/store/read.py's.
"""

from __future__ import annotations

import functools
import io
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import StorageConfig
from pipeline.redact import redact_uri
from pipeline.schema import PAGES_SCHEMA
from pipeline.store import paths
from pipeline.store.fs import filesystem
from pipeline.store.retry import retry
from pipeline.summary import RunSummary


@dataclass(frozen=True)
class Output:
    """An output root opened with the run's storage settings."""

    fs: fsspec.AbstractFileSystem
    root: str  # path inside fs, no trailing slash

    @classmethod
    def open(cls, uri: str, storage: StorageConfig | dict[str, Any] | None = None) -> Output:
        if isinstance(storage, dict):  # plain fsspec options (e.g. from a notebook)
            from fsspec.core import url_to_fs

            fs, path = url_to_fs(uri, **storage)
        else:
            fs, path = filesystem(uri, storage or StorageConfig())
        return cls(fs, path.rstrip("/"))

    def check_writable(self) -> None:
        """Fail before any work when the output cannot be written: a missing bucket or refused credentials
        are fatal, not per page. Only a real write sees a 403: object stores answer `exists` with False
        when the credentials are wrong, which would pass for a missing bucket."""
        if _is_local(self.fs):
            self.fs.makedirs(self.root, exist_ok=True)
        where = redact_uri(self.fs.unstrip_protocol(self.root))
        probe = self.path(f".write-probe-{uuid.uuid4().hex}")
        try:
            self.fs.pipe_file(probe, b"")
            self.fs.rm_file(probe)
        except PermissionError:
            raise PermissionError(
                f"access denied writing to the output {where}: check the storage "
                "credentials and the bucket's permissions"
            ) from None
        except FileNotFoundError:
            raise FileNotFoundError(f"output bucket not found: {where}") from None

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def part_path(self, run_id: str, seq: int) -> str:
        return self.path(paths.part_key(run_id, seq))

    def ledger_path(self, run_id: str, seq: int) -> str:
        return self.path(paths.ledger_key(run_id, seq))

    def summary_path(self, run_id: str) -> str:
        return self.path(paths.summary_key(run_id))

    def put_atomic(self, path: str, data: bytes) -> None:
        """Readers see all of `data` or nothing: one PUT on object stores, tmp + rename on local disks."""
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        if _is_local(self.fs):
            tmp = path + ".tmp"
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, path)
        else:
            retry(lambda: self.fs.pipe_file(path, data))

    def glob(self, pattern: str) -> list[str]:
        return sorted(self.fs.glob(self.path(pattern)))


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def table_bytes(table: pa.Table) -> bytes:
    return parquet_bytes(table.cast(PAGES_SCHEMA))


def commit_part(
    out: Output,
    run_id: str,
    seq: int,
    table: pa.Table,
    documents: list[dict[str, Any]],
    engine_config_hash: str,
    figures: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Write the part's figures ({key: PNG}, keys in its figure folder), then the part file, then its
    ledger record (the commit point). Returns the record."""
    write_figures(out, run_id, seq, figures or {})
    part = out.part_path(run_id, seq)
    out.fs.makedirs(out.path(paths.part_folder_key(run_id)), exist_ok=True)
    data = table_bytes(table)
    retry(lambda: out.fs.pipe_file(part, data))
    record = {
        "run_id": run_id,
        "seq": seq,
        "file": paths.part_key(run_id, seq),
        "rows": table.num_rows,
        "documents": documents,
        "engine_config_hash": engine_config_hash,
        "committed_at": datetime.now(UTC).isoformat(),
    }
    if figures:  # the folder the record makes visible (records without the keys have no figures)
        record |= {"figure_folder": paths.figure_folder_key(run_id, seq), "figures": len(figures)}
    out.put_atomic(out.ledger_path(run_id, seq), json.dumps(record, sort_keys=True).encode())
    return record


_PUT_BATCH = 64  # figure files handed to the store at once (object stores upload them concurrently)


def write_figures(out: Output, run_id: str, seq: int, figures: dict[str, bytes]) -> None:
    """The part's figure files, into a folder emptied first: what an earlier attempt at this run and seq
    left there (it crashed before its record) must not become visible with this commit, figures or not."""
    folder_key = paths.figure_folder_key(run_id, seq)
    folder = out.path(folder_key)
    if out.fs.exists(folder):
        out.fs.rm(folder, recursive=True)
    stray = [k for k in figures if not k.startswith(folder_key + "/")]
    if stray:
        raise ValueError(f"figures outside the folder of part {run_id}/{seq}: {stray[:3]}")
    if not figures:
        return
    out.fs.makedirs(folder, exist_ok=True)
    items = [(out.path(k), v) for k, v in figures.items()]
    for i in range(0, len(items), _PUT_BATCH):
        batch = dict(items[i : i + _PUT_BATCH])
        retry(functools.partial(out.fs.pipe, batch))


def read_ledger(out: Output) -> list[dict[str, Any]]:
    """All commit records, oldest first (commit time, then run and sequence)."""
    records = [json.loads(out.fs.cat_file(p)) for p in out.glob(paths.LEDGER_GLOB)]
    return sorted(records, key=lambda r: (r["committed_at"], r["run_id"], r["seq"]))


def committed_documents(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], bool]:
    """(doc_id, content_hash, engine_config_hash) -> whether that commit had no error rows."""
    done: dict[tuple[str, str, str], bool] = {}
    for rec in records:
        for doc in rec["documents"]:
            done[(doc["doc_id"], doc["content_hash"], rec["engine_config_hash"])] = doc.get("ok", True)
    return done


def clean_orphans(out: Output, records: list[dict[str, Any]], grace_s: float) -> list[str]:
    """Delete part files and figures without a ledger record that are older than grace_s (younger ones may
    belong to a run still writing). Returns what was deleted."""
    ledgered = {out.path(r["file"]) for r in records}
    parts = {(r["run_id"], int(r["seq"])) for r in records}
    orphans = [p for p in out.glob(paths.PART_GLOB) if p not in ledgered]
    orphans += [p for p in out.glob(paths.FIGURE_GLOB) if paths.figure_part(p) not in parts]
    return _remove_old(out, orphans, grace_s)


def _remove_old(out: Output, candidates: list[str], grace_s: float) -> list[str]:
    now = time.time()
    removed = []
    for path in candidates:
        mtime = _mtime(out.fs.info(path))  # one HEAD per object
        if now - mtime >= grace_s:
            out.fs.rm_file(path)
            removed.append(path)
    return removed


def clean_run_orphans(out: Output, run_id: str, grace_s: float) -> list[str]:
    """clean_orphans for one run, from names alone (part-{seq} and figures/{run}/{seq} pair with ledger
    {seq}): for runs that may have crashed between a part and its record, without reading any record."""
    ledgered = {paths.ledger_seq(p) for p in out.glob(paths.run_ledger_glob(run_id))}
    orphans = [p for p in out.glob(paths.run_part_glob(run_id)) if paths.part_seq(p) not in ledgered]
    orphans += [p for p in out.glob(paths.run_figure_glob(run_id)) if paths.figure_part(p)[1] not in ledgered]
    return _remove_old(out, orphans, grace_s)


def _mtime(info: dict[str, Any]) -> float:
    mtime: Any = info.get("mtime") or info.get("LastModified")  # seconds, or a datetime on object stores
    return mtime.timestamp() if hasattr(mtime, "timestamp") else float(mtime or 0)


def write_summary(out: Output, summary: RunSummary) -> None:
    out.put_atomic(out.summary_path(summary.run_id), summary.model_dump_json(indent=2).encode())
