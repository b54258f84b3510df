"""fsspec access with the run's storage settings, and the listing of input documents."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from pipeline.config import StorageConfig
from pipeline.redact import loggable_name, source_name

log = logging.getLogger("pipeline")

_S3_PROTOCOLS = {"s3", "s3a"}


@dataclass(frozen=True)
class DocRef:
    doc_id: str
    uri: str  # what to read (may carry a pre-signed query); never written out
    source_uri: str  # the listed name, verbatim but without credentials: rows, ledger, doc_id
    size_bytes: int
    content_hash: str
    error: str = ""  # non-empty: the listing found no such object (the document becomes one error row)


def filesystem(uri: str, storage: StorageConfig) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path) for a URI; S3 settings apply only to s3:// so local paths keep working."""
    protocol = uri.split("://", 1)[0] if "://" in uri else "file"
    if protocol not in _S3_PROTOCOLS:
        return url_to_fs(uri)
    fs, path = url_to_fs(uri, **storage.fsspec_options())
    fs.retries = storage.s3fs_retries  # a class attribute in s3fs; fsspec caches fs per options, all ours
    return fs, path


def doc_id_for(source_uri: str) -> str:
    """Stable id of the exact listed name: two keys that differ anywhere (even after a '?') get two ids,
    while an http(s) URL listed again with a new pre-signed query keeps its id (its query is not hashed)."""
    return hashlib.sha256(source_uri.encode()).hexdigest()[:16]


def content_hash_of(info: dict[str, Any]) -> str:
    """Whatever the store gives that changes when the bytes change: ETag, md5, else size + mtime."""
    for key in ("ETag", "etag", "md5", "checksum"):
        value = info.get(key)
        if value:
            return f"{key.lower()}:{str(value).strip(chr(34))}"
    mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or ""
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return f"size:{info.get('size', 0)}-mtime:{mtime}"


def _doc_ref(
    fs: fsspec.AbstractFileSystem, path: str, original: str | None = None, info: dict[str, Any] | None = None
) -> DocRef:
    info = info if info is not None else fs.info(path)
    uri = original or fs.unstrip_protocol(path)
    source = source_name(uri)
    return DocRef(doc_id_for(source), uri, source, int(info.get("size") or 0), content_hash_of(info))


def _manifest_ref(entry: str, storage: StorageConfig) -> DocRef:
    """One manifest entry. A missing entry is that document's error, not the run's: the manifest
    itself was readable, so the other entries still get processed."""
    fs, path = filesystem(entry, storage)
    original = entry if "?" in entry else None  # a pre-signed URL is read with its query
    try:
        return _doc_ref(fs, path, original)
    except FileNotFoundError:
        uri = original or fs.unstrip_protocol(path)
        source = source_name(uri)
        log.warning("manifest entry not found: %s", loggable_name(source))
        return DocRef(
            doc_id_for(source), uri, source, 0, "missing", error="not found: listed in the manifest"
        )


def _is_pdf(path: str) -> bool:
    return path.lower().endswith(".pdf")


def list_documents(input_uri: str, storage: StorageConfig, list_threads: int = 16) -> list[DocRef]:
    """Every document the input names, sorted by URI: a folder/prefix yields its *.pdf files (recursively);
    a glob its matches; a URI list (.txt/.lst) the URIs it lists. The whole list in memory: for small
    inputs and tests; runs plan through pipeline.listing.iter_documents page by page."""
    from pipeline.listing import iter_documents

    refs = [r for page in iter_documents(input_uri, storage, list_threads) for r in page]
    return sorted(refs, key=lambda r: r.source_uri)


def read_bytes(uri: str, storage: StorageConfig) -> bytes:
    fs, path = filesystem(uri, storage)
    with fs.open(path, "rb") as f:
        return f.read()
