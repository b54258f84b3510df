"""The planning path before the committed-documents index, kept verbatim for side-by-side measurements
(benchmarks/bench_planning.py, tests/pipeline/test_plan_s3.py): the whole input listed into one list,
every ledger record read one object at a time, the difference taken in a Python dict."""

from __future__ import annotations

from pipeline.config import PipelineConfig, StorageConfig
from pipeline.redact import loggable_name, source_name
from pipeline.store.fs import filesystem
from pipeline.store.listing import DocRef, doc_ref, is_pdf, manifest_ref
from pipeline.store.output import Output, clean_orphans, committed_documents, read_ledger


def _read_manifest(uri: str, storage: StorageConfig) -> list[str]:
    fs, path = filesystem(uri, storage)
    with fs.open(path, "rt") as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


def legacy_list_documents(input_uri: str, storage: StorageConfig) -> list[DocRef]:
    if input_uri.lower().endswith((".txt", ".lst", ".manifest")):
        refs = [manifest_ref(entry, storage) for entry in _read_manifest(input_uri, storage)]
        return sorted(refs, key=lambda r: r.source_uri)
    fs, path = filesystem(input_uri, storage)
    if any(ch in path for ch in "*?["):
        found = fs.glob(path, detail=True)
    elif fs.isdir(path):
        found = {p: i for p, i in fs.find(path, detail=True).items() if is_pdf(p)}
    elif fs.exists(path):
        found = {path: fs.info(path)}
    else:
        raise FileNotFoundError(f"input not found: {loggable_name(source_name(input_uri))}")
    files = {p: i for p, i in found.items() if i.get("type") != "directory"}
    return sorted((doc_ref(fs, p, info=i) for p, i in files.items()), key=lambda r: r.source_uri)


def legacy_plan(
    cfg: PipelineConfig, out: Output, engine_config_hash: str, docs: list[DocRef] | None = None
) -> tuple[list[DocRef], int, int]:
    """(to do, skipped, first seq) exactly as the pipeline planned before the index. `docs` stands in
    for the listing when the input is an inventory the old path could not read."""
    records = read_ledger(out)
    clean_orphans(out, records, cfg.orphan_grace_s)
    done = committed_documents(records)
    docs = legacy_list_documents(cfg.input, cfg.storage) if docs is None else docs
    todo = [
        d
        for d in docs
        if not _is_done(done.get((d.doc_id, d.content_hash, engine_config_hash)), cfg.retry_failed)
    ]
    seqs = [r["seq"] for r in records if r["run_id"] == cfg.run_id]
    return todo, len(docs) - len(todo), max(seqs, default=-1) + 1


def _is_done(committed_ok: bool | None, retry_failed: bool) -> bool:
    return committed_ok is not None and (committed_ok or not retry_failed)
