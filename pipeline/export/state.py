"""The export state under the destination: what was exported, from which committed version, and where.

    {dest}/_export/export-{seq:06d}.json            manifest of one export (written last, atomically)
    {dest}/_export/export-{seq:06d}.state.parquet   every exported document after that export

The manifest is the commit point: it is written only after the Markdown files, the JSONL shards and the
state file it names. An export that stops before it leaves the previous state in force, so the next export
redoes its documents (under the same export id, whose leftover shards it first removes).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.store.output import Output

STATE_DIR = "_export"
_STATE_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("fingerprint", pa.string(), nullable=False),  # the committed version it was exported from
        pa.field("markdown", pa.string(), nullable=False),  # path under dest; "" when Markdown is off
        pa.field("jsonl", pa.string(), nullable=False),  # shard under dest that holds its current record
        pa.field("export_id", pa.string(), nullable=False),  # export that wrote it last
    ]
)


@dataclass(frozen=True)
class DocState:
    fingerprint: str
    markdown: str
    jsonl: str
    export_id: str


@dataclass(frozen=True)
class ExportState:
    seq: int  # sequence number of the last committed export; 0 before the first
    documents: dict[str, DocState]


def export_id(seq: int) -> str:
    return f"export-{seq:06d}"


def manifest_path(dest: Output, seq: int) -> str:
    return dest.path(STATE_DIR, f"{export_id(seq)}.json")


def state_file(seq: int) -> str:
    return f"{STATE_DIR}/{export_id(seq)}.state.parquet"


def load_state(dest: Output) -> ExportState:
    """The state after the last committed export (an empty one before the first)."""
    manifests = dest.glob(f"{STATE_DIR}/export-*.json")
    if not manifests:
        return ExportState(0, {})
    manifest = json.loads(dest.fs.cat_file(manifests[-1]))  # zero-padded ids: the last name is the newest
    table = pq.read_table(io.BytesIO(dest.fs.cat_file(dest.path(manifest["state"]))), schema=_STATE_SCHEMA)
    cols = table.to_pydict()
    docs = {
        d: DocState(f, m, j, e)
        for d, f, m, j, e in zip(
            cols["doc_id"],
            cols["fingerprint"],
            cols["markdown"],
            cols["jsonl"],
            cols["export_id"],
            strict=True,
        )
    }
    return ExportState(int(manifest["seq"]), docs)


def commit_state(dest: Output, seq: int, documents: dict[str, DocState], manifest: dict[str, Any]) -> None:
    """Write the state file, then the manifest naming it (the commit point); then drop older state files,
    which no manifest needs any more (the manifests stay as the export history)."""
    names = sorted(documents)
    table = pa.table(
        {
            "doc_id": names,
            "fingerprint": [documents[d].fingerprint for d in names],
            "markdown": [documents[d].markdown for d in names],
            "jsonl": [documents[d].jsonl for d in names],
            "export_id": [documents[d].export_id for d in names],
        },
        schema=_STATE_SCHEMA,
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    dest.put_atomic(dest.path(state_file(seq)), buf.getvalue())
    record = {**manifest, "seq": seq, "export_id": export_id(seq), "state": state_file(seq)}
    dest.put_atomic(manifest_path(dest, seq), json.dumps(record, indent=2, sort_keys=True).encode())
    for path in dest.glob(f"{STATE_DIR}/export-*.state.parquet"):
        if not path.endswith(state_file(seq)):
            dest.fs.rm_file(path)
