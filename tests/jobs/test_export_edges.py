"""jobs.export and jobs.cost_report at their edges, on output committed through the pipeline's own commit
protocol (no Ray): an output no digitize run wrote to is an error that creates nothing; a destination's
name is taken as typed; an export option that changes which files exist (Markdown on or off) is part of
what decides "nothing new"."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from pipeline.export import ExportConfig, run_export
from pipeline.export.run import MARKDOWN_DIR
from pipeline.schema import PAGES_SCHEMA
from pipeline.stages.rows import RunStamp, new_row
from pipeline.store.output import Output, commit_part
from rtprune.engines.contract import EngineIdentity


def _row(run_id: str, doc_id: str, page: int, pages: int) -> dict:
    stamp = RunStamp(run_id, EngineIdentity("m", "tiny", "none", "h"))
    doc = {"doc_id": doc_id, "source_uri": f"file:///in/{doc_id}.pdf", "content_hash": f"{doc_id}-{run_id}"}
    return new_row(stamp, doc, page, pages) | {"text": f"text of {doc_id} page {page} in {run_id}"}


def commit(out_dir: Path, run_id: str, seq: int, docs: dict[str, int]) -> None:
    """Commit `docs` (doc_id -> pages) as one part of `run_id`, through the commit protocol."""
    out = Output.open(str(out_dir))
    rows = [_row(run_id, d, i, n) for d, n in docs.items() for i in range(n)]
    documents = [
        {"doc_id": d, "content_hash": f"{d}-{run_id}", "source_uri": f"file:///in/{d}.pdf", "ok": True}
        for d in docs
    ]
    commit_part(out, run_id, seq, pa.Table.from_pylist(rows, schema=PAGES_SCHEMA), documents, "e1")


def _markdown(dest: Path) -> dict[str, str]:
    """The Markdown files of the export; each has its HTML viewer beside it and nothing else is there."""
    folder = dest / MARKDOWN_DIR
    files = {p.name: p.read_text() for p in folder.iterdir()} if folder.exists() else {}
    markdown = {n: t for n, t in files.items() if n.endswith(".md")}
    assert set(files) == set(markdown) | {n.removesuffix(".md") + ".html" for n in markdown}, sorted(files)
    return markdown


def test_an_output_no_run_wrote_to_is_an_error_and_nothing_is_created(tmp_path, capsys):
    from jobs.cost_report import main as cost_report
    from jobs.export import main as export

    (tmp_path / "empty").mkdir()
    for output in (tmp_path / "nonexistent", tmp_path / "empty"):
        assert export(["--output", str(output), "--dest", str(tmp_path / "exp")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "no digitize run" in err and str(output) in err, err
        assert cost_report(["--output", str(output), "--out-dir", str(tmp_path / "report")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "no digitize run" in err, err
    assert not (tmp_path / "nonexistent").exists()
    assert not (tmp_path / "exp").exists() and not (tmp_path / "report").exists()


def test_a_destination_name_is_taken_as_typed(tmp_path, capsys):
    from jobs.export import main

    commit(tmp_path / "out", "run-1", 0, {"a": 1})
    dest = tmp_path / "exp #4"
    assert main(["--output", str(tmp_path / "out"), "--dest", str(dest)]) == 0
    assert (dest / "_export" / "export-000001.json").is_file()
    assert f"{dest}/jsonl/export-000001/" in capsys.readouterr().out


def test_markdown_turned_on_later_is_written_then_nothing_is_new(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "exp"
    commit(out, "run-1", 0, {"a": 2, "b": 1})
    cfg = ExportConfig(output=str(out), dest=str(dest), markdown=False)
    first = run_export(cfg)
    assert (first.documents, first.markdown_files) == (2, 0) and not _markdown(dest)
    second = run_export(cfg.model_copy(update={"markdown": True}))
    assert (second.export_id, second.documents, second.markdown_files) == ("export-000002", 0, 2)
    assert second.shards == []  # the JSONL records are current: not written again
    texts = _markdown(dest)
    assert len(texts) == 2 and any("text of a page 1 in run-1" in t for t in texts.values())
    third = run_export(cfg.model_copy(update={"markdown": True}))
    assert third.export_id == "" and third.unchanged == 2


def test_a_document_changed_while_markdown_is_off_loses_its_stale_markdown(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "exp"
    commit(out, "run-1", 0, {"a": 1, "b": 1})
    cfg = ExportConfig(output=str(out), dest=str(dest))
    assert run_export(cfg).markdown_files == 2
    before = _markdown(dest)
    commit(out, "run-2", 0, {"a": 1})  # a new version of a
    result = run_export(cfg.model_copy(update={"markdown": False}))
    assert (result.documents, result.changed, result.markdown_files) == (1, 1, 0)
    after = _markdown(dest)
    assert len(after) == 1 and "text of b page 0 in run-1" in next(iter(after.values()))
    assert set(after) < set(before)
    again = run_export(cfg)  # Markdown back on: only a's file is missing, and it is written current
    assert (again.documents, again.markdown_files) == (0, 1)
    assert any("in run-2" in t for t in _markdown(dest).values())


def test_a_viewer_turned_off_leaves_no_viewer_of_an_older_version(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "exp"
    commit(out, "run-1", 0, {"a": 1})
    cfg = ExportConfig(output=str(out), dest=str(dest))
    assert run_export(cfg).viewer_files == 1
    commit(out, "run-2", 0, {"a": 1})
    result = run_export(cfg.model_copy(update={"viewer": False}))
    assert (result.changed, result.markdown_files, result.viewer_files) == (1, 1, 0)
    names = [p.name for p in (dest / MARKDOWN_DIR).iterdir()]
    assert len(names) == 1 and names[0].endswith(".md")
    assert "in run-2" in (dest / MARKDOWN_DIR / names[0]).read_text()
