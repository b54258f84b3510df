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
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import StorageConfig
from pipeline.redact import loggable_name, source_name
from pipeline.store.fs import filesystem
from pipeline.store.listing import DOC_SCHEMA

S3_INVENTORY_CSV_COLUMNS = ("Bucket", "Key", "Size", "LastModifiedDate", "ETag")
_DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def is_inventory(input_uri: str, kind: str) -> bool:
    if kind != "auto":
        return kind == "inventory"
    lower = input_uri.lower().split("?", 1)[0]
    return lower.endswith("manifest.json") or lower.endswith(_DATA_SUFFIXES)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def inventory_files(
    input_uri: str, storage: StorageConfig, columns: tuple[str, ...], glob: bool = False
) -> tuple[list[str], str, tuple[str, ...], str]:
    """(data file URIs, "csv" | "parquet", CSV column names, default bucket) of an inventory input; with
    glob, the input is a pattern of data files (otherwise a literal path)."""
    fs, path = filesystem(input_uri, storage)
    if path.endswith("manifest.json"):
        manifest = json.loads(fs.cat_file(path))
        fmt = manifest.get("fileFormat", "CSV").lower()
        if fmt not in ("csv", "parquet"):
            raise ValueError(
                f"inventory format {manifest.get('fileFormat')!r} is not supported (CSV, Parquet)"
            )
        cols = tuple(c.strip() for c in manifest.get("fileSchema", "").split(",") if c.strip()) or columns
        dest = manifest.get("destinationBucket", "").rsplit(":", 1)[-1]
        base = (
            f"{dest}/"
            if "://" in input_uri and input_uri.startswith(("s3://", "s3a://")) and dest
            else path.rsplit("/", 1)[0] + "/"
        )
        files = [fs.unstrip_protocol(base + f["key"]) for f in manifest.get("files", [])]
        return files, fmt, cols, manifest.get("sourceBucket", "")
    if glob:
        paths = sorted(fs.glob(path))
    elif fs.isdir(path):
        paths = sorted(p for p in fs.find(path) if p.lower().endswith(_DATA_SUFFIXES))
    else:
        paths = [path] if fs.exists(path) else []
    if not paths:
        raise FileNotFoundError(f"inventory not found: {loggable_name(source_name(input_uri))}")
    fmt = "parquet" if paths[0].lower().endswith(".parquet") else "csv"
    return [fs.unstrip_protocol(p) for p in paths], fmt, columns, ""


def read_inventory(
    input_uri: str, storage: StorageConfig, columns: tuple[str, ...], glob: bool = False
):  # -> ray.data.Dataset
    """A Ray Data dataset of DOC_SCHEMA rows: the files are read and converted by Ray tasks."""
    import ray
    from pyarrow import csv as pacsv
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    files, fmt, cols, default_bucket = inventory_files(input_uri, storage, columns, glob)
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
            paths,
            filesystem=pafs,
            read_options=pacsv.ReadOptions(column_names=list(cols)),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in cols}),
            arrow_open_stream_args={"compression": "gzip"} if all(p.endswith(".gz") for p in paths) else None,
        )
    return ds.map_batches(
        inventory_rows,
        batch_format="pyarrow",
        batch_size=None,
        zero_copy_batch=True,
        fn_kwargs={"url_encoded": fmt == "csv", "default_bucket": default_bucket},
    )


def inventory_rows(
    batch: pa.Table, url_encoded: bool, default_bucket: str = "", protocol: str = "s3"
) -> pa.Table:
    """Inventory rows -> DOC_SCHEMA rows of the PDFs among them (doc_id and content_hash as a prefix
    listing would give for the same object, so switching input kinds redoes nothing).

    Vectorised with pyarrow.compute: Python runs only where a rule has no Arrow form, and only on the
    rows that need it (URL-decoding keys with '%' or '+', names with userinfo or http(s), the mtime form
    of rows without an ETag, once per distinct value) plus one sha256 per document for doc_id."""
    col: dict[str, pa.Array] = {}
    for name in batch.column_names:  # same name after normalising: the last column wins
        col[_norm(name)] = batch[name].combine_chunks()
    keep = _current_mask(col, batch.num_rows)
    col = {name: values.filter(keep) for name, values in col.items()}
    source = _sources(col, int(pc.sum(keep).as_py() or 0), url_encoded, default_bucket, protocol)
    is_pdf = pc.fill_null(pc.ends_with(pc.utf8_lower(source), ".pdf"), False)
    source = _python_where(source.filter(is_pdf), _needs_source_name(source.filter(is_pdf)), source_name)
    col = {name: values.filter(is_pdf) for name, values in col.items()}
    n = len(source)
    sha = hashlib.sha256
    doc_ids = [sha(s).hexdigest()[:16] for s in source.cast(pa.binary()).to_pylist()]
    size = _size_bytes(col["size"]) if "size" in col else pa.array(np.zeros(n, dtype=np.int64))
    return pa.table(
        {
            "doc_id": pa.array(doc_ids, pa.string()),
            "uri": source,
            "source_uri": source,
            "size_bytes": size,
            "content_hash": _content_hashes(col, n),
            "error": pa.repeat("", n).cast(pa.string()),
        },
        schema=DOC_SCHEMA,
    )


def _strings(values: pa.Array) -> pa.Array:
    return values if values.type == pa.string() else values.cast(pa.string())


def _current_mask(col: dict[str, pa.Array], n: int) -> pa.Array:
    """False for delete markers and non-current versions (is_latest false / is_delete_marker true, any case)."""
    keep = pa.array(np.ones(n, dtype=bool))
    for name, skip_if in (("islatest", "false"), ("isdeletemarker", "true")):
        if name in col and n:
            hit = pc.fill_null(pc.equal(pc.utf8_lower(_strings(col[name])), skip_if), False)
            keep = pc.and_(keep, pc.invert(hit))
    return keep


def _sources(
    col: dict[str, pa.Array], n: int, url_encoded: bool, default_bucket: str, protocol: str
) -> pa.Array:
    """The object's name: the uri (or url) column as is, else protocol://bucket/key, CSV keys URL-decoded.
    A missing bucket or key reads "None", as str.format of a null did."""
    uris = col.get("uri") if "uri" in col and n else col.get("url")
    if uris is not None and n:
        return _strings(uris)
    key = pc.fill_null(_strings(col["key"]), "None") if "key" in col else pa.array(["None"] * n, pa.string())
    if url_encoded:
        key = _python_where(key, pc.match_substring_regex(key, r"[%+]"), unquote_plus)
    bucket = (
        pc.fill_null(_strings(col["bucket"]), "None")
        if "bucket" in col and n
        else pa.array([default_bucket] * n, pa.string())
    )
    return pc.binary_join_element_wise(f"{protocol}://", bucket, "/", key, "")


def _needs_source_name(source: pa.Array) -> pa.Array:
    """Rows source_name may change: userinfo ('@') or an http(s) URL (redacted). The rest are verbatim."""
    return pc.or_(pc.match_substring(source, "@"), pc.match_substring_regex(source, r"^(?i)https?://"))


def _python_where(values: pa.Array, mask: pa.Array, fn: Callable[[str], str]) -> pa.Array:
    """values with fn applied to the rows where mask is true (fn in Python on those rows only)."""
    idx = np.flatnonzero(np.asarray(pc.fill_null(mask, False), dtype=bool))
    if len(idx) == 0:
        return values
    changed = pa.array([fn(v) for v in values.take(pa.array(idx)).to_pylist()], pa.string())
    out = np.arange(len(values), dtype=np.int64)
    out[idx] = len(values) + np.arange(len(idx))
    return pa.concat_arrays([values, changed]).take(pa.array(out))


def _size_bytes(size: pa.Array) -> pa.Array:
    """int(size or 0): CSV sizes are strings ("" and null are 0); anything Arrow cannot cast goes through int()."""
    if pa.types.is_integer(size.type):
        return pc.fill_null(size, 0).cast(pa.int64())
    text = _strings(size)
    try:
        return pc.fill_null(pc.if_else(pc.equal(text, ""), None, text).cast(pa.int64()), 0)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([int(v or 0) for v in size.to_pylist()], pa.int64())


def _content_hashes(col: dict[str, pa.Array], n: int) -> pa.Array:
    """Same form as storage.content_hash_of: "etag:" + the ETag without quotes when there is one, else
    size + mtime ("size:{raw size or 0}-mtime:{float timestamp or ''}"), the mtime formatted by the same
    Python code as a listing's, once per distinct value among the rows without an ETag."""
    etag = _strings(col["etag"]) if "etag" in col and n else pa.array([None] * n, pa.string())
    has_etag = pc.fill_null(pc.not_equal(etag, ""), False)
    hashes = pc.binary_join_element_wise("etag:", pc.utf8_trim(etag, '"'), "")
    if pc.all(has_etag).as_py() is not False:
        return hashes
    rest = pc.invert(has_etag)
    size = col["size"].filter(rest) if "size" in col else pa.array([None] * n).filter(rest)
    size = (
        pa.array([str(v or 0) for v in size.to_pylist()], pa.string())
        if not pa.types.is_string(size.type)
        else pc.if_else(pc.fill_null(pc.equal(size, ""), True), "0", size)
    )
    mtimes = col.get("lastmodifieddate") if "lastmodifieddate" in col and n else col.get("lastmodified")
    mtime = _mtime_text(mtimes.filter(rest) if mtimes is not None else pa.array([None] * n).filter(rest))
    fallback = pc.binary_join_element_wise("size:", size, "-mtime:", mtime, "")
    out = np.arange(n, dtype=np.int64)
    out[np.flatnonzero(np.asarray(rest))] = n + np.arange(len(fallback))
    return pa.concat_arrays([hashes.fill_null(""), fallback]).take(pa.array(out))


def _mtime_text(values: pa.Array) -> pa.Array:
    """The mtime part of the size + mtime form, computed in Python once per distinct value."""
    if len(values) == 0:
        return pa.array([], pa.string())
    encoded = values.dictionary_encode()
    texts = pa.array(
        [_mtime_str(v) for v in encoded.dictionary.to_pylist()] + [_mtime_str(None)], pa.string()
    )
    return texts.take(pc.fill_null(encoded.indices, len(encoded.dictionary)))


def _mtime_str(mtime: Any) -> str:
    mtime = mtime or ""
    if isinstance(mtime, str) and mtime:
        mtime = datetime.fromisoformat(mtime.replace("Z", "+00:00")).timestamp()
    elif hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return f"{mtime}"
