"""Input listing that streams: pages of DocRefs, never the whole corpus in one list.

A prefix on S3 is listed one ListObjectsV2 page (1,000 keys) at a time, other filesystems one directory at a
time; a URI list is read line by line and its entries' metadata is fetched by a bounded thread pool, one
chunk at a time. Inventory manifests (CSV/Parquet files an object store writes for a bucket) are read as a
distributed Ray Data read: pipeline/store/inventory.py."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from pipeline.config import StorageConfig
from pipeline.redact import loggable_name, source_name
from pipeline.store.entries import ListingNotes, input_root, local_entry, single_entry
from pipeline.store.fs import filesystem

log = logging.getLogger("pipeline")

URI_LIST_SUFFIXES = (".txt", ".lst", ".manifest")
DOC_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("uri", pa.string()),
        ("source_uri", pa.string()),
        ("size_bytes", pa.int64()),
        ("content_hash", pa.string()),
        ("error", pa.string()),
    ]
)
_S3 = ("s3", "s3a")


@dataclass(frozen=True)
class DocRef:
    doc_id: str
    uri: str  # what to read (may carry a pre-signed query); never written out
    source_uri: str  # the listed name, verbatim but without credentials: rows, ledger, doc_id
    size_bytes: int
    content_hash: str
    error: str = ""  # non-empty: the listing found no such object (the document becomes one error row)


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


def doc_ref(
    fs: fsspec.AbstractFileSystem, path: str, original: str | None = None, info: dict[str, Any] | None = None
) -> DocRef:
    info = info if info is not None else fs.info(path)
    listed = original or fs.unstrip_protocol(path)
    source = source_name(listed)
    uri = fs.unstrip_protocol(info["target"]) if info.get("target") else listed  # a link: read its target
    return DocRef(doc_id_for(source), uri, source, int(info.get("size") or 0), content_hash_of(info))


def manifest_ref(entry: str, storage: StorageConfig) -> DocRef:
    """One manifest entry. A missing entry is that document's error, not the run's: the manifest
    itself was readable, so the other entries still get processed."""
    fs, path = filesystem(entry, storage)
    original = entry if "?" in entry else None  # a pre-signed URL is read with its query
    try:
        return doc_ref(fs, path, original)
    except FileNotFoundError:
        uri = original or fs.unstrip_protocol(path)
        source = source_name(uri)
        log.warning("manifest entry not found: %s", loggable_name(source))
        return DocRef(
            doc_id_for(source), uri, source, 0, "missing", error="not found: listed in the manifest"
        )


def is_pdf(path: str) -> bool:
    return path.lower().endswith(".pdf")


def list_documents(
    input_uri: str,
    storage: StorageConfig,
    list_threads: int = 16,
    glob: bool = False,
    notes: ListingNotes | None = None,
) -> list[DocRef]:
    """Every document the input names, sorted by URI: a folder/prefix yields its *.pdf files (recursively);
    with glob, a pattern its matches; a URI list (.txt/.lst) the URIs it lists. The whole list in memory:
    for small inputs and tests; runs plan through pipeline.store.listing.iter_documents page by page."""
    pages = iter_documents(input_uri, storage, list_threads, glob=glob, notes=notes)
    refs = [r for page in pages for r in page]
    return sorted(refs, key=lambda r: r.source_uri)


def refs_table(refs: Iterable[DocRef]) -> pa.Table:
    refs = list(refs)
    return pa.table({f.name: [getattr(r, f.name) for r in refs] for f in DOC_SCHEMA}, schema=DOC_SCHEMA)


def iter_documents(
    input_uri: str,
    storage: StorageConfig,
    list_threads: int = 16,
    page_size: int = 1000,
    kind: str = "auto",
    glob: bool = False,
    notes: ListingNotes | None = None,
) -> Iterator[list[DocRef]]:
    """Pages of the documents a prefix, pattern, single file or URI list names (unsorted; bounded memory).
    kind: "uris" reads input as a URI list, "prefix" as a prefix, "auto" decides by the suffix. A path is
    literal ("in[1]" is that folder) unless glob is set (PipelineConfig.input_glob). Entries left out
    (not regular files, links out of the input, folders that cannot be listed) are counted in notes."""
    if kind == "uris" or (kind == "auto" and input_uri.lower().endswith(URI_LIST_SUFFIXES)):
        yield from _iter_uri_list(input_uri, storage, list_threads, page_size)
        return
    notes = notes if notes is not None else ListingNotes()
    fs, path = filesystem(input_uri, storage)
    is_url = input_uri.lower().startswith(("http://", "https://"))  # '?' starts a query there, not a glob
    shown = loggable_name(source_name(input_uri))
    if glob and not is_url:
        pages = _iter_glob(fs, path, storage, notes)
        missing = f"input matched nothing: {shown}"
    else:
        pages = _iter_prefix(fs, path, storage, notes)
        hint = "; it is read as a literal path, input_glob=true reads it as a pattern"
        missing = f"input not found: {shown}" + (hint if any(ch in path for ch in "*?[") else "")
    empty = True
    for infos in pages:
        refs = [doc_ref(fs, i["name"], info=i) for i in infos]
        if refs:
            empty = False
            yield refs
    if empty:  # a mistyped input must stop the job, not "succeed" with nothing to do
        raise FileNotFoundError(missing)


def _iter_uri_list(uri: str, storage: StorageConfig, threads: int, page_size: int) -> Iterator[list[DocRef]]:
    """One metadata request per entry, `threads` at a time: the list is read a chunk at a time."""
    fs, path = filesystem(uri, storage)
    with fs.open(path, "rt") as f, ThreadPoolExecutor(max(1, threads), thread_name_prefix="list") as pool:
        chunk: list[str] = []
        for line in f:
            entry = line.strip()
            if entry and not entry.startswith("#"):
                chunk.append(entry)
            if len(chunk) >= page_size:
                yield list(pool.map(lambda e: manifest_ref(e, storage), chunk))
                chunk = []
        if chunk:
            yield list(pool.map(lambda e: manifest_ref(e, storage), chunk))


def _iter_prefix(
    fs: fsspec.AbstractFileSystem, path: str, storage: StorageConfig, notes: ListingNotes
) -> Iterator[list[dict[str, Any]]]:
    """Every *.pdf below path (or path itself when it is one object), a page or a directory at a time."""
    if _protocol(fs) in _S3:
        bucket, _, key = path.partition("/")
        found = False
        prefix = key.rstrip("/") + "/" if key else ""
        for infos in _s3_pages(fs, bucket, prefix):
            found = found or bool(infos)
            yield [i for i in infos if is_pdf(i["name"])]
        if not found and key:
            yield from _single(fs, path, notes)
        return
    if fs.isdir(path):
        root = input_root(path)
        for files in walk_files(fs, path, notes):
            yield _documents(fs, [i for i in files if is_pdf(i["name"])], root, storage, notes)
    else:
        yield from _single(fs, path, notes)


def _documents(
    fs: fsspec.AbstractFileSystem,
    infos: list[dict[str, Any]],
    root: str,
    storage: StorageConfig,
    notes: ListingNotes,
) -> list[dict[str, Any]]:
    """The entries that are documents: on a local disk regular files and links to them (pipeline/store/
    entries.py); on object stores every object (they hold nothing else)."""
    infos = [i for i in infos if i.get("type") != "directory"]
    if not isinstance(fs, LocalFileSystem):
        return infos
    kept = []
    for info in infos:
        entry = local_entry(info, root, storage.follow_links_outside_input)
        if isinstance(entry, str):
            notes.skip(fs.unstrip_protocol(info["name"]), entry)
        else:
            kept.append(entry)
    return kept


def _single(fs: fsspec.AbstractFileSystem, path: str, notes: ListingNotes) -> Iterator[list[dict[str, Any]]]:
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return
    if info.get("type") == "directory":
        return
    reason = single_entry(info) if isinstance(fs, LocalFileSystem) else ""
    if reason:
        notes.skip(fs.unstrip_protocol(path), reason)
        return
    yield [{**info, "name": path}]


def _iter_glob(
    fs: fsspec.AbstractFileSystem, pattern: str, storage: StorageConfig, notes: ListingNotes
) -> Iterator[list[dict[str, Any]]]:
    """A glob's matches. On S3 the listing below the pattern's fixed part is streamed and filtered."""
    from fsspec.utils import glob_translate

    matcher = re.compile(glob_translate(pattern))
    fixed = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    if _protocol(fs) not in _S3:  # walked here, not by fs.glob, whose walk drops unlistable folders
        top = fixed.rsplit("/", 1)[0] if "/" in fixed else "."
        depth = None if "**" in pattern else pattern[len(top) + 1 :].count("/") + 1
        root = input_root(pattern)
        for files in walk_files(fs, top, notes, depth):
            yield _documents(fs, [i for i in files if matcher.match(i["name"])], root, storage, notes)
        return
    bucket, _, key_prefix = fixed.partition("/")
    for infos in _s3_pages(fs, bucket, key_prefix):
        yield [i for i in infos if matcher.match(i["name"])]


def walk_files(
    fs: fsspec.AbstractFileSystem, top: str, notes: ListingNotes, max_depth: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """The non-folder entries below top, one folder at a time (max_depth: folder levels, None = all).
    fs.walk would do, but its recursion drops on_error below the top folder (fsspec 2026.9), so an
    unreadable subfolder vanished without a word; here each one is a skipped entry in notes. top itself
    missing yields nothing (the caller says "not found"); top unreadable raises (the whole input is)."""
    first = top.rstrip("/") or "/"
    stack = [(first, 1)]
    while stack:
        folder, level = stack.pop()
        try:
            infos = fs.ls(folder, detail=True)
        except OSError as exc:  # FileNotFoundError included: a folder removed while the walk ran
            if folder == first:
                if isinstance(exc, FileNotFoundError):
                    return
                raise
            notes.unlisted(exc)
            continue
        files = []
        for info in infos:
            name = info["name"].rstrip("/")
            if info.get("type") != "directory":
                files.append(info)
            elif name != folder and (max_depth is None or level < max_depth):
                stack.append((name, level + 1))
        yield files


def _s3_pages(fs: Any, bucket: str, prefix: str) -> Iterator[list[dict[str, Any]]]:
    """ListObjectsV2 one page at a time through s3fs's own retried page loop (one request per page)."""
    from fsspec.asyn import sync

    pages = fs._list_pages("list_objects_v2", Bucket=bucket, Prefix=prefix, **fs.req_kw)
    while True:
        try:
            page = sync(fs.loop, pages.__anext__)
        except (StopAsyncIteration, FileNotFoundError):  # no such bucket: the caller says "not found"
            return
        yield [
            {
                "name": f"{bucket}/{c['Key']}",
                "size": c["Size"],
                "ETag": c.get("ETag", ""),
                "LastModified": c.get("LastModified"),
                "type": "file",
            }
            for c in page.get("Contents", [])
            if not c["Key"].endswith("/")
        ]


def _protocol(fs: fsspec.AbstractFileSystem) -> str:
    return fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
