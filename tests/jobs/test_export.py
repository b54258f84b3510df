"""jobs.export on output committed by the real pipeline (local Ray, tiny random model), on local disk and
on a moto S3 server: the Markdown and JSONL match the committed pages, exports are incremental, failed
pages are marked, and nothing without a ledger record is exported."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.config import PipelineConfig, StorageConfig
from pipeline.export import ExportConfig, run_export
from pipeline.export.records import PAGE_SEPARATOR, document_file_name, markdown_page_text, page_marker
from pipeline.export.run import shard_lines
from pipeline.samples import corrupt_pdf_bytes, sample_pdf_bytes
from pipeline.schema import PAGES_SCHEMA
from pipeline.stages.rows import NO_STRUCTURE
from pipeline.store.output import Output, commit_part, table_bytes
from pipeline.store.read import read_committed

pytestmark = pytest.mark.ray
pytest.importorskip("rtprune.engines.hf.engine")

from pipeline_fixtures import ENGINE_OVERRIDES, PAGE_POLICY_ONE_ATTEMPT  # noqa: E402
from pipeline_fixtures import SMALL_POOLS as POOLS  # noqa: E402
from reliability.hostile_names import hostile_names  # noqa: E402
from reliability.s3_server import MotoS3  # noqa: E402

HEALTHY = {"caf\u00e9 menu.pdf": 1, "report.pdf": 2, "deep/it's `odd`.pdf": 3}


@pytest.fixture(scope="module")
def digitized(local_ray, tmp_path_factory) -> Path:
    """One run of the real pipeline over three healthy PDFs and a corrupt one; the output folder."""
    from pipeline.driver.run import run_pipeline

    root = tmp_path_factory.mktemp("digitized")
    for i, (name, pages) in enumerate(HEALTHY.items()):
        (root / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "in" / name).write_bytes(sample_pdf_bytes(pages, seed=i))
    (root / "in" / "broken.pdf").write_bytes(corrupt_pdf_bytes())
    cfg = PipelineConfig.model_validate(
        {
            "input": str(root / "in"),
            "output": str(root / "out"),
            "engine": ENGINE_OVERRIDES,
            "pools": POOLS,
            "run_id": "run-1",
            "page_policy": PAGE_POLICY_ONE_ATTEMPT,
            "commit_documents": 2,
        }
    )
    summary = run_pipeline(cfg)
    assert (summary.pages_ok, summary.pages_failed) == (6, 1)
    return root / "out"


@pytest.fixture
def output(digitized, tmp_path) -> Path:
    """A private copy of the committed output, so a test can commit more to it."""
    shutil.copytree(digitized, tmp_path / "out")
    return tmp_path / "out"


def _cfg(output: Path | str, dest: Path | str, **extra) -> ExportConfig:
    return ExportConfig.model_validate({"output": str(output), "dest": str(dest), **extra})


def _committed_docs(output_uri: str, storage=None) -> dict[str, list[dict]]:
    """doc_id -> its committed rows in page order, read with the pipeline's own reader."""
    docs: dict[str, list[dict]] = {}
    for r in read_committed(output_uri, storage).sort_by("page_index").to_pylist():
        docs.setdefault(r["doc_id"], []).append(r)
    return docs


def _manifest(dest: Output, export_id: str) -> dict:
    return json.loads(dest.fs.cat_file(dest.path("_export", f"{export_id}.json")))


def _records(dest: Output, export_id: str) -> dict[str, dict]:
    records = {}
    for shard in _manifest(dest, export_id)["shards"]:
        for line in dest.fs.cat_file(dest.path(shard["file"])).decode().splitlines():
            record = json.loads(line)
            assert record["id"] not in records
            records[record["id"]] = record
    return records


def _body(row: dict) -> str:
    """What a page says in the export: its clean Markdown (its text where none was stored)."""
    return row["markdown"] or row["text"]


def _check_record(record: dict, rows: list[dict]) -> None:
    """The record holds the Markdown of every ok page in order, each span slices back to its page."""
    ok = [r for r in rows if r["status"] == "ok"]
    assert record["text"] == PAGE_SEPARATOR.join(_body(r) for r in ok)
    spans = record["metadata"]["page_spans"]
    assert [record["text"][s:e] for s, e, _ in spans] == [_body(r) for r in ok]
    assert [i for _, _, i in spans] == [r["page_index"] for r in ok]
    meta = record["metadata"]
    assert (meta["pages_ok"], meta["pages_failed"]) == (len(ok), len(rows) - len(ok))
    assert meta["failed_pages"] == [
        {"page_index": r["page_index"], "stage": r["error_stage"], "reason": r["error"]}
        for r in rows
        if r["status"] != "ok"
    ]
    assert record["source"] == rows[0]["source_uri"] and meta["run_id"] == rows[0]["run_id"]
    for key in ("model_id", "model_mode", "prune_method", "prune_config_hash", "content_hash"):
        assert meta[key] == rows[0][key]
    assert meta["visual_tokens_kept"] == sum(r["visual_tokens_kept"] for r in rows)


def _check_markdown(text: str, rows: list[dict]) -> None:
    """Every page in order after its marker: ok pages with their (inert) text, failed ones with stage and
    reason."""
    pos = 0
    for r in rows:
        if r["page_index"] < 0:
            expected = f"> **Document failed** at stage `{r['error_stage']}`: `{r['error']}`"
        else:
            marker = page_marker(r["page_index"], r["page_count"])
            pos = text.index(marker, pos) + len(marker)
            expected = (
                markdown_page_text(_body(r))
                if r["status"] == "ok"
                else f"> **Page {r['page_index'] + 1} failed** at stage `{r['error_stage']}`: `{r['error']}`"
            )
        pos = text.index(expected, pos) + len(expected)


def _check_export(dest: Output, export_id: str, docs: dict[str, list[dict]]) -> None:
    records = _records(dest, export_id)
    assert set(records) == set(docs)
    for doc_id, rows in docs.items():
        _check_record(records[doc_id], rows)
        name = document_file_name(doc_id, rows[0]["source_uri"])
        _check_markdown(dest.fs.cat_file(dest.path("markdown", name)).decode(), rows)


def _snapshot(fs, root: str) -> dict[str, str]:
    """path -> sha256 of its bytes and its modification time, for every file under root."""
    fs.invalidate_cache()  # s3fs keeps listings: a second snapshot must see the store, not the cache
    found = fs.find(root, detail=True)
    return {
        p: hashlib.sha256(fs.cat_file(p)).hexdigest() + str(i.get("mtime") or i.get("LastModified"))
        for p, i in found.items()
    }


def _commit_copy(
    out: Output,
    template: list[dict],
    run_id: str,
    doc_id: str,
    texts: list[str],
    fail_page: int | None = None,
) -> None:
    """Commit a document through the pipeline's commit protocol, its rows modelled on real ones."""
    rows = []
    for i, text in enumerate(texts):
        row = {
            **template[0],
            "run_id": run_id,
            "doc_id": doc_id,
            "source_uri": f"file:///in/{doc_id}.pdf",
            "content_hash": f"{doc_id}-{run_id}",
            "page_index": i,
            "page_count": len(texts),
            **NO_STRUCTURE,  # the template's layout describes its own text, not this one
            "text": text,
            "markdown": text,
            "blocks": [],
        }
        if i == fail_page:
            row |= {"status": "error", "error_stage": "ocr", "error": "RuntimeError: CUDA error", "text": ""}
        rows.append(row)
    docs = [
        {
            "doc_id": doc_id,
            "content_hash": f"{doc_id}-{run_id}",
            "source_uri": rows[0]["source_uri"],
            "ok": fail_page is None,
        }
    ]
    commit_part(out, run_id, 0, pa.Table.from_pylist(rows, schema=PAGES_SCHEMA), docs, "e1")


def test_export_matches_the_committed_pages(output, tmp_path):
    result = run_export(_cfg(output, tmp_path / "export", shard_max_bytes=400))
    docs = _committed_docs(str(output))
    assert (result.export_id, result.documents, result.new, result.pages_ok, result.pages_failed) == (
        "export-000001",
        4,
        4,
        6,
        1,
    )
    dest = Output.open(str(tmp_path / "export"))
    _check_export(dest, "export-000001", docs)
    manifest = _manifest(dest, "export-000001")
    assert len(manifest["shards"]) > 1  # bounded shards, each holding whole records
    assert all(s["bytes"] <= 400 or s["records"] == 1 for s in manifest["shards"])
    assert [s["file"] for s in manifest["shards"]] == [
        f"jsonl/export-000001/part-{k:05d}.jsonl" for k in range(len(manifest["shards"]))
    ]
    broken = next(rows for rows in docs.values() if rows[0]["source_uri"].endswith("broken.pdf"))
    assert broken[0]["status"] == "error"  # marked in both outputs (checked above), not dropped
    names = sorted(p.name for p in (tmp_path / "export" / "markdown").glob("*.md"))
    assert len(names) == 4 and all(re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{20}\.md", n) for n in names)
    viewers = sorted(p.name for p in (tmp_path / "export" / "markdown").glob("*.html"))
    assert viewers == [n.removesuffix(".md") + ".html" for n in names]  # one viewer beside each
    # Each read page drawn from its source under its blocks: 6 images, none for the unreadable document.
    images = sorted((tmp_path / "export" / "markdown").glob("*/p*.jpg"))
    assert result.page_image_files == len(images) == 6 and manifest["page_image_files"] == 6
    assert any(n.startswith("cafe-menu-") for n in names) and any(n.startswith("it-s-odd-") for n in names)


def test_a_second_export_writes_nothing(output, tmp_path):
    cfg = _cfg(output, tmp_path / "export")
    run_export(cfg)
    dest = Output.open(str(tmp_path / "export"))
    before = _snapshot(dest.fs, dest.root)
    result = run_export(cfg)
    assert (result.export_id, result.documents, result.unchanged) == ("", 0, 4)
    assert _snapshot(dest.fs, dest.root) == before


def test_only_a_newly_committed_or_changed_document_is_exported(output, tmp_path):
    cfg = _cfg(output, tmp_path / "export")
    run_export(cfg)
    out, dest = Output.open(str(output)), Output.open(str(tmp_path / "export"))
    template = next(rows for rows in _committed_docs(str(output)).values() if rows[0]["status"] == "ok")
    markdown_before = _snapshot(dest.fs, dest.path("markdown"))
    _commit_copy(out, template, "run-2", "new-doc", ["first page", "second page"])
    result = run_export(cfg)
    assert (result.export_id, result.documents, result.new, result.changed) == ("export-000002", 1, 1, 0)
    _check_export(dest, "export-000002", {"new-doc": _committed_docs(str(output))["new-doc"]})
    markdown_after = _snapshot(dest.fs, dest.path("markdown"))
    assert {k: v for k, v in markdown_after.items() if k in markdown_before} == markdown_before
    # A new version of the same document (changed content) replaces it: exported again, from the new rows.
    _commit_copy(out, template, "run-3", "new-doc", ["first page, corrected"])
    result = run_export(cfg)
    assert (result.export_id, result.documents, result.new, result.changed) == ("export-000003", 1, 0, 1)
    assert _records(dest, "export-000003")["new-doc"]["text"] == "first page, corrected"
    md = dest.fs.cat_file(dest.path("markdown", document_file_name("new-doc", "file:///in/new-doc.pdf")))
    assert b"first page, corrected" in md and b"second page" not in md
    assert run_export(cfg).export_id == ""


def test_a_failed_page_is_marked_not_dropped(output, tmp_path):
    out = Output.open(str(output))
    template = next(rows for rows in _committed_docs(str(output)).values() if rows[0]["status"] == "ok")
    _commit_copy(out, template, "run-2", "half-read", ["page one", "lost", "page three"], fail_page=1)
    run_export(_cfg(output, tmp_path / "export"))
    dest = Output.open(str(tmp_path / "export"))
    record = _records(dest, "export-000001")["half-read"]
    assert record["text"] == "page one" + PAGE_SEPARATOR + "page three"
    assert record["metadata"]["failed_pages"] == [
        {"page_index": 1, "stage": "ocr", "reason": "RuntimeError: CUDA error"}
    ]
    md = dest.fs.cat_file(
        dest.path("markdown", document_file_name("half-read", "file:///in/half-read.pdf"))
    ).decode()
    assert (
        md.index("page one")
        < md.index("> **Page 2 failed** at stage `ocr`: `RuntimeError: CUDA error`")
        < md.index("page three")
    )
    assert "- pages: 3 (2 ok, 1 failed)" in md


def test_a_part_without_its_ledger_record_is_not_exported(output, tmp_path):
    out = Output.open(str(output))
    rows = next(rows for rows in _committed_docs(str(output)).values() if rows[0]["status"] == "ok")
    orphan = [{**r, "doc_id": "orphan", "run_id": "run-9"} for r in rows]
    part = out.part_path("run-9", 0)
    out.fs.makedirs(part.rsplit("/", 1)[0], exist_ok=True)
    out.fs.pipe_file(part, table_bytes(pa.Table.from_pylist(orphan, schema=PAGES_SCHEMA)))
    result = run_export(_cfg(output, tmp_path / "export"))
    assert result.documents == 4
    assert "orphan" not in _records(Output.open(str(tmp_path / "export")), result.export_id)


def test_the_latest_commit_wins_across_engine_settings(output, tmp_path):
    out = Output.open(str(output))
    template = next(rows for rows in _committed_docs(str(output)).values() if rows[0]["status"] == "ok")
    _commit_copy(out, template, "run-2", "twice", ["with setting e1"])
    other = [{**template[0], "prune_method": "none", "prune_config_hash": "none-hash"}]
    rows = [
        {
            **other[0],
            "run_id": "run-3",
            "doc_id": "twice",
            "source_uri": "file:///in/twice.pdf",
            "content_hash": "twice-run-2",
            "page_index": 0,
            "page_count": 1,
            **NO_STRUCTURE,
            "text": "with setting e2",
            "markdown": "with setting e2",
        }
    ]
    commit_part(
        out,
        "run-3",
        0,
        pa.Table.from_pylist(rows, schema=PAGES_SCHEMA),
        [{"doc_id": "twice", "content_hash": "twice-run-2", "source_uri": rows[0]["source_uri"]}],
        "e2",
    )
    assert read_committed(str(output)).num_rows == 7 + 2  # both settings stay committed
    run_export(_cfg(output, tmp_path / "export"))
    record = _records(Output.open(str(tmp_path / "export")), "export-000001")["twice"]
    assert (record["text"], record["metadata"]["prune_method"]) == ("with setting e2", "none")


def test_an_export_stopped_before_its_manifest_is_redone(output, tmp_path, monkeypatch):
    import pipeline.export.run as export_run

    def killed(*args, **kwargs):
        raise RuntimeError("killed before the commit point")

    monkeypatch.setattr(export_run, "commit_state", killed)
    with pytest.raises(RuntimeError, match="killed"):
        run_export(_cfg(output, tmp_path / "export"))
    assert list((tmp_path / "export" / "jsonl" / "export-000001").iterdir())  # files written, not committed
    assert not (tmp_path / "export" / "_export").exists()
    monkeypatch.undo()
    result = run_export(_cfg(output, tmp_path / "export"))
    assert (result.export_id, result.documents) == ("export-000001", 4)
    _check_export(Output.open(str(tmp_path / "export")), "export-000001", _committed_docs(str(output)))


def test_leftovers_of_an_unfinished_export_are_replaced(output, tmp_path):
    stale = tmp_path / "export" / "jsonl" / "export-000001" / "part-00007.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"id": "stale"}\n')
    result = run_export(_cfg(output, tmp_path / "export"))
    assert result.export_id == "export-000001" and not stale.exists()


def test_shards_are_cut_at_the_byte_bound_between_whole_records():
    lines = [b"a" * n for n in (3, 4, 2, 9, 1, 1, 5)]
    assert [[len(x) for x in shard] for shard in shard_lines(lines, 7)] == [[3, 4], [2], [9], [1, 1, 5]]
    assert shard_lines([], 7) == []


def test_gzip_shards_hold_the_same_records(output, tmp_path):
    import gzip

    plain = run_export(_cfg(output, tmp_path / "plain"))
    packed = run_export(_cfg(output, tmp_path / "packed", compression="gzip", markdown=False))
    assert packed.shards == [s + ".gz" for s in plain.shards] and packed.markdown_files == 0
    read = [gzip.decompress((tmp_path / "packed" / s).read_bytes()) for s in packed.shards]
    expected = [(tmp_path / "plain" / s).read_bytes() for s in plain.shards]
    assert [[json.loads(x)["text"] for x in r.splitlines()] for r in read] == [
        [json.loads(x)["text"] for x in e.splitlines()] for e in expected
    ]
    assert not (tmp_path / "packed" / "markdown").exists()


def test_file_names_are_safe_and_distinct_for_hostile_names():
    keys = [f"s3://bucket/in/{c.key}" for c in hostile_names()]
    doc_ids = [*keys, "a/b", "a\\b", "A/B", "..", "", "\u202e\n"]  # doc ids with any characters too
    for key in keys:
        names = {document_file_name(d, key) for d in doc_ids}
        assert len(names) == len(doc_ids)  # distinct ids, distinct names, whatever the source is called
        for name in names:
            assert re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{20}\.md", name) and len(name) <= 90, name
    # Names that differ only in case or normalisation still get their own files on any file system.
    assert len({document_file_name(d, d).lower() for d in keys}) == len(keys)
    assert document_file_name("x", keys[0]) == document_file_name("x", keys[0])  # deterministic


def test_cli_exports_then_reports_nothing_new(output, tmp_path, capsys):
    from jobs.export import main

    args = [f"output={output}", f"dest={tmp_path / 'export'}"]
    assert main(["--output", str(output), "--dest", str(tmp_path / "export")]) == 0
    assert (
        "export-000001: 4 documents (4 new, 0 changed, 0 unchanged), 6 pages ok, 1 failed"
        in capsys.readouterr().out
    )
    assert main(args) == 0
    assert "nothing new to export: 4 documents" in capsys.readouterr().out
    assert main([*args, "shard_max_bytes=0"]) == 2
    assert "shard_max_bytes" in capsys.readouterr().err


@pytest.fixture(scope="module")
def moto():
    with MotoS3() as server:
        yield server


def test_export_on_an_s3_compatible_store(digitized, moto):
    access = moto.access
    bucket = moto.make_bucket("export-e2e")
    fs = access.filesystem()
    fs.put(str(digitized), f"{bucket}/out", recursive=True)
    storage = StorageConfig(
        endpoint_url=access.endpoint_url, key=access.key, secret=access.secret, region="us-east-1"
    )
    cfg = ExportConfig(output=f"s3://{bucket}/out", dest=f"s3://{bucket}/export", storage=storage)
    result = run_export(cfg)
    assert (result.documents, result.pages_ok, result.pages_failed) == (4, 6, 1)
    dest = Output.open(cfg.dest, storage)
    _check_export(dest, "export-000001", _committed_docs(cfg.output, storage))
    before = _snapshot(fs, f"{bucket}/export")
    assert run_export(cfg).export_id == "" and _snapshot(fs, f"{bucket}/export") == before
    out = Output.open(cfg.output, storage)
    template = next(
        rows for rows in _committed_docs(cfg.output, storage).values() if rows[0]["status"] == "ok"
    )
    _commit_copy(out, template, "run-2", "late", ["late page"])
    result = run_export(cfg)
    assert (result.export_id, result.documents, result.new) == ("export-000002", 1, 1)
    assert list(_records(dest, "export-000002")) == ["late"]
    files = _snapshot(fs, f"{bucket}/export")
    assert any(p.endswith("_export/export-000002.json") for p in files)
    for path in files:
        assert access.secret.encode() not in fs.cat_file(path)
