"""Inventory manifests as input: the CSV or Parquet listings an object store writes for a large bucket
(S3 Inventory and the like), read as a distributed Ray Data read, one DOC_SCHEMA row per PDF.

Accepted inputs:
- an S3 Inventory `manifest.json`: its `fileFormat` (CSV or Parquet), `fileSchema` (the CSV columns) and
  `files` (data files: keys in the destination bucket on s3://, relative to the manifest's folder elsewhere);
- inventory data files themselves: a file or glob of *.csv, *.csv.gz or *.parquet, or a folder of them
  with input_kind=inventory; CSV files have no header, their columns are `inventory_columns`.
Columns are matched by name without case or punctuation: bucket, key, size, e_tag/etag, last_modified_date;
a `uri` column may stand for bucket + key. CSV keys are URL-encoded (as S3 Inventory writes them); Parquet
keys are not. Delete markers and non-current versions (is_delete_marker / is_latest) are skipped."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

import pyarrow as pa

from pipeline.config import StorageConfig
from pipeline.listing import DOC_SCHEMA
from pipeline.redact import loggable_name, source_name
from pipeline.storage import filesystem

S3_INVENTORY_CSV_COLUMNS = ("Bucket", "Key", "Size", "LastModifiedDate", "ETag")
_DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def is_inventory(input_uri: str, kind: str) -> bool:
    if kind != "auto":
        return kind == "inventory"
    lower = input_uri.lower().split("?", 1)[0]
    return lower.endswith("manifest.json") or lower.endswith(_DATA_SUFFIXES)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def inventory_files(input_uri: str, storage: StorageConfig,
                    columns: tuple[str, ...]) -> tuple[list[str], str, tuple[str, ...], str]:
    """(data file URIs, "csv" | "parquet", CSV column names, default bucket) of an inventory input."""
    fs, path = filesystem(input_uri, storage)
    if path.endswith("manifest.json"):
        manifest = json.loads(fs.cat_file(path))
        fmt = manifest.get("fileFormat", "CSV").lower()
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"inventory format {manifest.get('fileFormat')!r} is not supported (CSV, Parquet)")
        cols = tuple(c.strip() for c in manifest.get("fileSchema", "").split(",") if c.strip()) or columns
        dest = manifest.get("destinationBucket", "").rsplit(":", 1)[-1]
        base = f"{dest}/" if "://" in input_uri and input_uri.startswith(("s3://", "s3a://")) and dest \
            else path.rsplit("/", 1)[0] + "/"
        files = [fs.unstrip_protocol(base + f["key"]) for f in manifest.get("files", [])]
        return files, fmt, cols, manifest.get("sourceBucket", "")
    if any(ch in path for ch in "*?["):
        paths = sorted(fs.glob(path))
    elif fs.isdir(path):
        paths = sorted(p for p in fs.find(path) if p.lower().endswith(_DATA_SUFFIXES))
    else:
        paths = [path] if fs.exists(path) else []
    if not paths:
        raise FileNotFoundError(f"inventory not found: {loggable_name(source_name(input_uri))}")
    fmt = "parquet" if paths[0].lower().endswith(".parquet") else "csv"
    return [fs.unstrip_protocol(p) for p in paths], fmt, columns, ""


def read_inventory(input_uri: str, storage: StorageConfig, columns: tuple[str, ...]):  # -> ray.data.Dataset
    """A Ray Data dataset of DOC_SCHEMA rows: the files are read and converted by Ray tasks."""
    import ray
    from pyarrow import csv as pacsv
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    files, fmt, cols, default_bucket = inventory_files(input_uri, storage, columns)
    if not files:
        return ray.data.from_arrow(DOC_SCHEMA.empty_table())
    fs, _ = filesystem(files[0], storage)
    local = files[0].startswith("file://")
    pafs = None if local else PyFileSystem(FSSpecHandler(fs))
    paths = [f.removeprefix("file://") if local else fs._strip_protocol(f) for f in files]
    if fmt == "parquet":
        ds = ray.data.read_parquet(paths, filesystem=pafs)
    else:
        ds = ray.data.read_csv(
            paths, filesystem=pafs, read_options=pacsv.ReadOptions(column_names=list(cols)),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in cols}),
            arrow_open_stream_args={"compression": "gzip"} if all(p.endswith(".gz") for p in paths) else None)
    return ds.map_batches(inventory_rows, batch_format="pyarrow", batch_size=None, zero_copy_batch=True,
                          fn_kwargs={"url_encoded": fmt == "csv", "default_bucket": default_bucket})


def inventory_rows(batch: pa.Table, url_encoded: bool, default_bucket: str = "",
                   protocol: str = "s3") -> pa.Table:
    """Inventory rows -> DOC_SCHEMA rows of the PDFs among them (doc_id and content_hash as a prefix
    listing would give for the same object, so switching input kinds redoes nothing)."""
    col = {_norm(n): batch[n].to_pylist() for n in batch.column_names}
    n = batch.num_rows
    keys = col.get("key") or [None] * n
    uris = col.get("uri") or col.get("url")
    buckets = col.get("bucket") or [default_bucket] * n
    latest, deleted = col.get("islatest"), col.get("isdeletemarker")
    out: dict[str, list[Any]] = {f.name: [] for f in DOC_SCHEMA}
    for i in range(n):
        if (latest and str(latest[i]).lower() == "false") or (deleted and str(deleted[i]).lower() == "true"):
            continue
        if uris:
            source = uris[i]
        else:
            key = unquote_plus(keys[i]) if url_encoded else keys[i]
            source = f"{protocol}://{buckets[i]}/{key}"
        if not source or not source.lower().endswith(".pdf"):
            continue
        source = source_name(source)
        out["doc_id"].append(hashlib.sha256(source.encode()).hexdigest()[:16])
        out["uri"].append(source)
        out["source_uri"].append(source)
        out["size_bytes"].append(int(col["size"][i] or 0) if "size" in col else 0)
        out["content_hash"].append(_content_hash(col, i))
        out["error"].append("")
    return pa.table(out, schema=DOC_SCHEMA)


def _content_hash(col: dict[str, list[Any]], i: int) -> str:
    """Same form as storage.content_hash_of: the ETag when there is one, else size + mtime."""
    etag = col.get("etag")
    if etag and etag[i]:
        return f"etag:{str(etag[i]).strip(chr(34))}"
    mtime: Any = (col.get("lastmodifieddate") or col.get("lastmodified") or [""] * (i + 1))[i] or ""
    if isinstance(mtime, str) and mtime:
        mtime = datetime.fromisoformat(mtime.replace("Z", "+00:00")).timestamp()
    elif hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    size = (col.get("size") or [0] * (i + 1))[i] or 0
    return f"size:{size}-mtime:{mtime}"
