"""inventory_rows (vectorised) against a straightforward per-row reference: the same documents, names,
doc_ids, sizes and content hashes on varied inventory tables, and the same content hash a listing of the
same object gives (storage.content_hash_of)."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pyarrow as pa
import pytest

from pipeline.redact import source_name
from pipeline.store.inventory import inventory_rows
from pipeline.store.listing import DOC_SCHEMA, content_hash_of


def reference_rows(
    batch: pa.Table, url_encoded: bool, default_bucket: str = "", protocol: str = "s3"
) -> pa.Table:
    """One row at a time, as the rules read: skip old versions and delete markers, name, keep PDFs, hash."""
    col = {"".join(ch for ch in n.lower() if ch.isalnum()): batch[n].to_pylist() for n in batch.column_names}
    n = batch.num_rows
    out: dict[str, list[Any]] = {f.name: [] for f in DOC_SCHEMA}
    for i in range(n):
        if "islatest" in col and str(col["islatest"][i]).lower() == "false":
            continue
        if "isdeletemarker" in col and str(col["isdeletemarker"][i]).lower() == "true":
            continue
        uris = col.get("uri") or col.get("url")
        if uris:
            source = uris[i]
        else:
            key = col["key"][i]
            source = (
                f"{protocol}://{col['bucket'][i] if 'bucket' in col else default_bucket}/"
                f"{unquote_plus(key) if url_encoded else key}"
            )
        if not source or not source.lower().endswith(".pdf"):
            continue
        source = source_name(source)
        size = col["size"][i] if "size" in col else None
        etag = col.get("etag", [None] * n)[i]
        mtime = (col.get("lastmodifieddate") or col.get("lastmodified") or [None] * n)[i]
        if isinstance(mtime, str) and mtime:
            mtime = datetime.fromisoformat(mtime.replace("Z", "+00:00"))
        out["doc_id"].append(hashlib.sha256(source.encode()).hexdigest()[:16])
        out["uri"].append(source)
        out["source_uri"].append(source)
        out["size_bytes"].append(int(size or 0))
        out["content_hash"].append(content_hash_of({"ETag": etag, "size": size or 0, "mtime": mtime}))
        out["error"].append("")
    return pa.table(out, schema=DOC_SCHEMA)


def _varied_csv_rows(count: int, seed: int) -> list[tuple]:
    """Header-less-CSV-like string rows: URL-encoded keys ('%2F', '+', '%25', '%40'), mixed ETag / no ETag,
    fractional and whole-second mtimes, delete markers, old versions, non-PDF keys, odd names."""
    rng = random.Random(seed)
    names = [
        "a b/c.pdf",
        "x/y+z.PDF",
        "100%/r.pdf",
        "us@er/doc.pdf",
        "plain/doc.pdf",
        "notes.txt",
        "p.pdf.bak",
        "ünï/cödé.pdf",
        "q?x=1#f.pdf",
        "dir/sub/deep.Pdf",
    ]
    start = datetime(2025, 3, 1, tzinfo=UTC)
    rows = []
    for i in range(count):
        key = quote_plus(f"{i}-{rng.choice(names)}", safe="" if i % 2 else "/")
        stamp = start + timedelta(
            seconds=rng.randrange(10**8), microseconds=rng.choice([0, 1000 * rng.randrange(1000)])
        )
        mtime = stamp.isoformat(timespec="milliseconds").replace("+00:00", rng.choice(["Z", "+00:00"]))
        etag = rng.choice(['"' + f"{i:032x}" + '"', f"{i:x}-2", "", ""])
        rows.append(
            (
                "bkt",
                key,
                str(rng.randrange(10**9)) if i % 7 else "",
                mtime,
                etag,
                rng.choice(["true", "true", "TRUE", "false"]),
                rng.choice(["false", "False", "", "true"]),
            )
        )
    return rows


def _csv_table(rows: list[tuple]) -> pa.Table:
    cols = ["Bucket", "Key", "Size", "LastModifiedDate", "ETag", "IsLatest", "IsDeleteMarker"]
    return pa.table({c: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(cols)})


def _assert_same(batch: pa.Table, url_encoded: bool, **kwargs: Any) -> pa.Table:
    got = inventory_rows(batch, url_encoded=url_encoded, **kwargs)
    want = reference_rows(batch, url_encoded, **kwargs)
    assert got.schema == DOC_SCHEMA
    for name in DOC_SCHEMA.names:
        assert got[name].to_pylist() == want[name].to_pylist(), name
    return got


@pytest.mark.parametrize("seed", [0, 1])
def test_csv_inventory_rows_match_the_per_row_reference(seed):
    got = _assert_same(_csv_table(_varied_csv_rows(400, seed)), url_encoded=True)
    hashes = got["content_hash"].to_pylist()
    assert any(h.startswith("etag:") for h in hashes) and any(h.startswith("size:") for h in hashes)
    assert any("/" in u.split("/", 3)[3] for u in got["source_uri"].to_pylist())  # %2F decoded
    assert 0 < got.num_rows < 400


def test_mtime_form_matches_a_listing_of_the_same_object():
    """The size + mtime form of rows without an ETag, byte for byte as storage.content_hash_of writes it
    from the datetime a listing returns (whole seconds print as '.0', milliseconds keep their digits)."""
    mtimes = [
        "2026-01-01T00:00:00.000Z",
        "2026-01-01T00:00:00.500Z",
        "2026-01-01T00:00:00.123Z",
        "1999-12-31T23:59:59.999+00:00",
        "2026-07-01T12:00:00+02:00",
        "",
    ]
    batch = pa.table(
        {
            "Bucket": ["b"] * 6,
            "Key": [f"k{i}.pdf" for i in range(6)],
            "Size": ["7"] * 6,
            "LastModifiedDate": mtimes,
            "ETag": [""] * 6,
        }
    )
    got = inventory_rows(batch, url_encoded=True)["content_hash"].to_pylist()
    listed = [
        content_hash_of({"size": "7", "LastModified": datetime.fromisoformat(m.replace("Z", "+00:00"))})
        if m
        else content_hash_of({"size": "7"})
        for m in mtimes
    ]
    assert got == listed
    assert got[0] == "size:7-mtime:1767225600.0" and got[2] == "size:7-mtime:1767225600.123"


def test_parquet_inventory_rows_match_the_per_row_reference():
    """Parquet inventories: keys not encoded, typed sizes and bools, timestamp mtimes, nulls."""
    stamp = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    batch = pa.table(
        {
            "bucket": ["b", "b", "b", "b", "b", "b"],
            "key": ["a%2Fb+c.pdf", "x/y.pdf", "old.pdf", "gone.pdf", "z.txt", "u@v/w.pdf"],
            "size": pa.array([1, None, 3, 4, 5, 6], pa.int64()),
            "last_modified_date": pa.array(
                [stamp, stamp, None, stamp, stamp, None], pa.timestamp("ms", tz="UTC")
            ),
            "e_tag": [None, "", "e3", "e4", "e5", '"q"'],
            "is_latest": [True, True, False, True, True, None],
            "is_delete_marker": [False, None, False, True, False, False],
        }
    )
    got = _assert_same(batch, url_encoded=False)
    assert got["source_uri"].to_pylist() == ["s3://b/a%2Fb+c.pdf", "s3://b/x/y.pdf", "s3://b/u@v/w.pdf"]


def test_uri_column_and_default_bucket():
    uris = pa.table(
        {
            "URI": ["s3://k:s@bkt/a.pdf", "https://u:p@host/x.PDF", "s3://bkt/b.txt", None, "gs://g/c.pdf"],
            "size": ["1", "2", "3", "4", ""],
        }
    )
    got = _assert_same(uris, url_encoded=True)
    assert got["source_uri"].to_pylist() == ["s3://bkt/a.pdf", "https://host/x.PDF", "gs://g/c.pdf"]
    keys = pa.table({"Key": ["a.pdf", "b+c.pdf", "d.doc"], "Size": ["1", "2", "3"]})
    _assert_same(keys, url_encoded=True, default_bucket="src")
    _assert_same(keys.slice(0, 0), url_encoded=True, default_bucket="src")
