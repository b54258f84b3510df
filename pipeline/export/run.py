"""run_export: committed pages -> Markdown per document (with its figures and an HTML viewer beside it) +
JSONL shards, incrementally.

Reads only through pipeline.store.read.read_committed (ledgered parts, each document's newest commit per
engine config), so a part without its ledger record is never seen and no document is emitted half
committed. Of a document's versions (one per engine config) the one committed last is exported.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.export.config import ExportConfig
from pipeline.export.figures import (
    clear_folders,
    copy_figures,
    figure_copies,
    figure_folder,
    relative_to,
)
from pipeline.export.page_images import DocumentImages, write_page_images
from pipeline.export.records import (
    Document,
    Page,
    document_file_name,
    fingerprint,
    jsonl_record,
    markdown,
)
from pipeline.export.state import DocState, ExportState, commit_state, export_id, load_state
from pipeline.export.viewer import viewer_html
from pipeline.redact import loggable_name, redact_uri
from pipeline.store.output import Output
from pipeline.store.presence import require_digitize_output
from pipeline.store.read import read_committed
from pipeline.store.retry import retry

log = logging.getLogger("pipeline")

_SETTING = ["model_id", "model_mode", "prune_method", "prune_config_hash"]
_VERSION_KEYS = ["doc_id", "run_id", "source_uri", "content_hash", *_SETTING]
_PAGE_COLUMNS = [
    "doc_id",
    "page_index",
    "page_count",
    "status",
    "text",
    "error_stage",
    "error",
    "visual_tokens",
    "visual_tokens_kept",
    "markdown",
    "blocks",
    "width_pt",
    "height_pt",
]
MARKDOWN_DIR = "markdown"
JSONL_DIR = "jsonl"
_PUT_BATCH = 64  # Markdown files handed to the store at once (object stores upload them concurrently)


@dataclass(frozen=True)
class Version:
    """A document's latest committed version, as found in the pages table (no text read yet)."""

    doc_id: str
    run_id: str
    source_uri: str
    fingerprint: str


@dataclass(frozen=True)
class ExportResult:
    export_id: str  # "" when nothing was new: nothing was written
    documents: int  # exported by this run
    new: int
    changed: int
    pages_ok: int
    pages_failed: int
    shards: list[str] = field(default_factory=list)  # paths under dest
    markdown_files: int = 0
    unchanged: int = 0  # committed documents already exported in their latest version
    markdown_removed: int = 0  # stale Markdown files of documents changed while Markdown is off
    figure_files: int = 0  # figures copied beside the Markdown
    viewer_files: int = 0  # HTML viewers written beside the Markdown
    page_image_files: int = 0  # page images written for the viewers


def latest_versions(pages: pa.Table) -> list[Version]:
    """One Version per document, sorted by doc_id. read_committed lists commits oldest first, so the
    version whose rows come last was committed last."""
    if not pages.num_rows:
        return []
    order = pa.array(range(pages.num_rows), type=pa.int64())
    grouped = (
        pages.select(_VERSION_KEYS)
        .append_column("_order", order)
        .group_by(_VERSION_KEYS)
        .aggregate([("_order", "max"), ("_order", "count")])
    )
    latest: dict[str, dict] = {}
    for g in grouped.to_pylist():
        if g["doc_id"] not in latest or g["_order_max"] > latest[g["doc_id"]]["_order_max"]:
            latest[g["doc_id"]] = g
    return [
        Version(
            g["doc_id"],
            g["run_id"],
            g["source_uri"],
            fingerprint(
                g["doc_id"], g["run_id"], g["content_hash"], tuple(g[k] for k in _SETTING), g["_order_count"]
            ),
        )
        for g in (latest[d] for d in sorted(latest))
    ]


def read_documents(pages: pa.Table, versions: list[Version]) -> list[Document]:
    """The rows of these versions as Documents (in the versions' order), pages sorted by page_index."""
    wanted = {(v.doc_id, v.run_id) for v in versions}
    keys = pc.binary_join_element_wise(pages["doc_id"], pages["run_id"], "\x00")
    mask = pc.is_in(keys, value_set=pa.array(["\x00".join(k) for k in wanted], type=pa.string()))
    rows = pages.filter(mask).sort_by([("doc_id", "ascending"), ("page_index", "ascending")])
    by_doc: dict[str, list[dict]] = {}
    for r in rows.to_pylist():
        by_doc.setdefault(r["doc_id"], []).append(r)
    docs = []
    for v in versions:
        rs = by_doc[v.doc_id]
        first = rs[0]
        docs.append(
            Document(
                doc_id=v.doc_id,
                source_uri=first["source_uri"],
                content_hash=first["content_hash"],
                run_id=first["run_id"],
                page_count=first["page_count"],
                **{k: first[k] for k in _SETTING},
                pages=tuple(
                    Page(
                        r["page_index"],
                        r["status"],
                        r["text"],
                        r["error_stage"],
                        r["error"],
                        r["visual_tokens"],
                        r["visual_tokens_kept"],
                        r["markdown"],
                        tuple(r["blocks"]),
                        r["width_pt"],
                        r["height_pt"],
                    )
                    for r in rs
                ),
            )
        )
    return docs


def shard_lines(lines: Iterable[bytes], max_bytes: int) -> list[list[bytes]]:
    """Consecutive groups of lines of at most max_bytes each (a longer line is a shard of its own)."""
    shards: list[list[bytes]] = []
    size = max_bytes + 1
    for line in lines:
        if size + len(line) > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(line)
        size += len(line)
    return shards


def _markdown_names(versions: list[Version], state: ExportState) -> dict[str, str]:
    """doc_id -> Markdown path under dest. Two documents on one name would overwrite each other: that stops
    the export (sha256 makes it all but impossible; it is checked, not assumed)."""
    owners = {s.markdown: d for d, s in state.documents.items() if s.markdown}
    names = {}
    for v in versions:
        path = f"{MARKDOWN_DIR}/{document_file_name(v.doc_id, v.source_uri)}"
        if owners.setdefault(path, v.doc_id) != v.doc_id:
            raise RuntimeError(
                f"export file name collision: {loggable_name(v.doc_id)} and "
                f"{loggable_name(owners[path])} both map to {path}"
            )
        names[v.doc_id] = path
    return names


def _put_many(dest: Output, files: dict[str, bytes]) -> None:
    """Write whole files: tmp + rename on local disks; on object stores a batch of PUTs at once."""
    protocol = dest.fs.protocol if isinstance(dest.fs.protocol, str) else dest.fs.protocol[0]
    if protocol in ("file", "local"):
        for path, data in files.items():
            dest.put_atomic(dest.path(path), data)
        return
    items = list(files.items())
    for i in range(0, len(items), _PUT_BATCH):
        batch = {dest.path(p): d for p, d in items[i : i + _PUT_BATCH]}
        retry(functools.partial(dest.fs.pipe, batch))


def _write_shards(dest: Output, eid: str, lines: list[bytes], cfg: ExportConfig) -> list[dict]:
    """Write this export's JSONL shards (removing leftovers of an earlier attempt at the same export id,
    which no manifest names); returns what the manifest lists about them."""
    folder = dest.path(JSONL_DIR, eid)
    if dest.fs.exists(folder):
        dest.fs.rm(folder, recursive=True)
    suffix = ".jsonl.gz" if cfg.compression == "gzip" else ".jsonl"
    shards = []
    for k, group in enumerate(shard_lines(lines, cfg.shard_max_bytes)):
        data = b"".join(group)
        if cfg.compression == "gzip":
            data = gzip.compress(data, mtime=0)  # mtime 0: the same records give the same bytes
        path = f"{JSONL_DIR}/{eid}/part-{k:05d}{suffix}"
        dest.put_atomic(dest.path(path), data)
        shards.append({"file": path, "records": len(group), "bytes": len(data)})
    return shards


@dataclass(frozen=True)
class ExportWork:
    """What one export writes. `records`: documents whose committed version is new or changed (a JSONL
    record each, and their Markdown when it is on); `markdown`: documents whose Markdown file is to be
    written (changed ones, and current ones that have none yet, e.g. after Markdown was off); `stale`:
    Markdown files of changed documents exported while Markdown is off (their text is no longer current)."""

    records: list[Version]
    markdown: list[Version]
    stale: list[str]


def plan_export(versions: list[Version], state: ExportState, with_markdown: bool) -> ExportWork:
    """Compare the committed versions with the last export's state under this export's options."""

    def changed(v: Version) -> bool:
        return v.doc_id not in state.documents or state.documents[v.doc_id].fingerprint != v.fingerprint

    records = [v for v in versions if changed(v)]
    if not with_markdown:
        stale = [state.documents[v.doc_id].markdown for v in records if v.doc_id in state.documents]
        return ExportWork(records, [], [m for m in stale if m])
    markdown = [v for v in versions if changed(v) or not state.documents[v.doc_id].markdown]
    return ExportWork(records, markdown, [])


def run_export(cfg: ExportConfig) -> ExportResult:
    """Export every committed document that is new or changed since the last export (and the Markdown of
    documents that lack theirs); nothing is written when nothing is. An output no digitize run wrote to is
    an error (pipeline.store.presence.NotAnOutput), raised before anything is created at the destination."""
    source = Output.open(cfg.output, cfg.storage)
    require_digitize_output(source, cfg.output)
    dest = Output.open(cfg.dest, cfg.storage)
    dest.check_writable()
    dest.fs.invalidate_cache(dest.root)  # fsspec shares filesystems per process: see what others wrote since
    pages = read_committed(cfg.output, cfg.storage)
    state = load_state(dest)
    versions = latest_versions(pages)
    work = plan_export(versions, state, cfg.markdown)
    if not work.records and not work.markdown:
        return ExportResult("", 0, 0, 0, 0, 0, unchanged=len(versions))
    seq = state.seq + 1
    eid = export_id(seq)
    names = _markdown_names(work.markdown, state)
    wanted = {v.doc_id for v in work.markdown} | {v.doc_id for v in work.records}
    docs = {d.doc_id: d for d in read_documents(pages, [v for v in versions if v.doc_id in wanted])}
    del pages  # the documents to export are all that is needed from here on
    md_docs = [docs[v.doc_id] for v in work.markdown]
    copies, images = _write_documents(source, dest, md_docs, names, state, cfg)
    _remove_stale(dest, work.stale)  # before the commit: the state still names them, and a rerun redoes it
    added = datetime.now(UTC).isoformat(timespec="seconds")
    exported = [docs[v.doc_id] for v in work.records]
    lines = [
        (json.dumps(jsonl_record(d, added, copies.get(d.doc_id)), ensure_ascii=False) + "\n").encode()
        for d in exported
    ]
    shards = _write_shards(dest, eid, lines, cfg)
    result = ExportResult(
        eid,
        len(exported),
        sum(d.doc_id not in state.documents for d in exported),
        sum(d.doc_id in state.documents for d in exported),
        sum(d.pages_ok for d in exported),
        sum(d.pages_failed for d in exported),
        [s["file"] for s in shards],
        len(names),
        len(versions) - len(exported),
        len(work.stale),
        sum(len(c) for c in copies.values()),
        len(names) if cfg.viewer else 0,
        sum(len(i.paths) for i in images.values()),
    )
    commit_state(
        dest, seq, _next_state(state, work, names, shards, eid), _manifest(cfg, result, added, shards)
    )
    return result


def _manifest(cfg: ExportConfig, result: ExportResult, added: str, shards: list[dict]) -> dict:
    """What the export's manifest says about it."""
    return {
        "exported_at": added,
        "output": redact_uri(cfg.output),
        "shards": shards,
        "documents": result.documents,
        "new": result.new,
        "changed": result.changed,
        "pages_ok": result.pages_ok,
        "pages_failed": result.pages_failed,
        "markdown": cfg.markdown,
        "markdown_dir": MARKDOWN_DIR,
        "markdown_files": result.markdown_files,
        "markdown_removed": result.markdown_removed,
        "figure_files": result.figure_files,
        "viewer_files": result.viewer_files,
        "page_image_files": result.page_image_files,
        "compression": cfg.compression,
    }


def viewer_path(markdown_path: str) -> str:
    """The document's HTML viewer, beside its Markdown."""
    return markdown_path.removesuffix(".md") + ".html"


def _remove_stale(dest: Output, stale: list[str]) -> None:
    """Remove the Markdown of each document that changed while Markdown is off, with its viewer and figures
    (none of them is current any more)."""
    clear_folders(dest, [figure_folder(md) for md in stale])
    for path in [p for md in stale for p in (md, viewer_path(md))]:
        if dest.fs.exists(dest.path(path)):
            dest.fs.rm_file(dest.path(path))


def _write_documents(
    source: Output,
    dest: Output,
    docs: list[Document],
    names: dict[str, str],
    state: ExportState,
    cfg: ExportConfig,
) -> tuple[dict[str, dict[str, str]], dict[str, DocumentImages]]:
    """Each document's figures and page images (written first: the files below link to them), Markdown
    and viewer; returns doc_id -> {figure key: its copy's path under dest} (empty without Markdown: nothing
    is copied) and doc_id -> its page images (none without viewers or with page_images off)."""
    docs = [d for d in docs if d.doc_id in names]
    copies = {d.doc_id: figure_copies(d, names[d.doc_id]) for d in docs}
    clear_folders(dest, [figure_folder(names[d.doc_id]) for d in docs if d.doc_id in state.documents])
    copy_figures(source, dest, {k: v for c in copies.values() for k, v in c.items()})
    images = _page_images(docs, names, dest, cfg)
    files = {}
    for d in docs:
        md = names[d.doc_id]
        links = relative_to(copies[d.doc_id], md)
        files[md] = markdown(d, links).encode()
        if cfg.viewer:
            html_path = viewer_path(md)
            shown = images.get(d.doc_id, DocumentImages(note=_IMAGES_OFF))
            files[html_path] = viewer_html(
                d,
                relative_to(copies[d.doc_id], html_path),
                relative_to(shown.paths, html_path),
                shown.note,
            ).encode()
        elif d.doc_id in state.documents and dest.fs.exists(dest.path(viewer_path(md))):
            dest.fs.rm_file(dest.path(viewer_path(md)))  # a viewer of an older version is not current
    _put_many(dest, files)
    return copies, images


_IMAGES_OFF = "page images are off (page_images: false)"


def _page_images(
    docs: list[Document], names: dict[str, str], dest: Output, cfg: ExportConfig
) -> dict[str, DocumentImages]:
    """The documents' page images, when their viewers are written and page images are on."""
    if not (cfg.viewer and cfg.page_images):
        return {}
    return write_page_images(
        docs, names, dest, cfg.storage, cfg.render, cfg.page_image_width_px, cfg.page_image_workers
    )


def _next_state(
    state: ExportState, work: ExportWork, names: dict[str, str], shards: list[dict], eid: str
) -> dict[str, DocState]:
    """The previous state with this export's documents updated: a new record (in the shards' record order)
    and Markdown file, or only a Markdown file."""
    documents = dict(state.documents)
    shard_of = [s["file"] for s in shards for _ in range(s["records"])]
    for v, shard in zip(work.records, shard_of, strict=True):
        documents[v.doc_id] = DocState(v.fingerprint, names.get(v.doc_id, ""), shard, eid)
    for v in work.markdown:
        old = documents[v.doc_id]
        documents[v.doc_id] = DocState(old.fingerprint, names[v.doc_id], old.jsonl, eid)
    return documents
