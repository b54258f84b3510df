"""What a folder listing takes and what it says it left out: regular files only (a FIFO or a device never
reaches a reader), symbolic links hashed by their target and kept inside the input folder unless allowed,
folder names with glob characters read literally unless a pattern is asked for, and folders that cannot be
listed reported as skipped instead of vanishing."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.config import PipelineConfig, StorageConfig
from pipeline.cost.accounting import price_pages
from pipeline.cost.pricing import load_pricing
from pipeline.stages.rows import RunStamp, new_row, to_table
from pipeline.store.index import mark_open
from pipeline.store.listing import ListingNotes, list_documents
from pipeline.store.output import Output, commit_part
from pipeline.store.plan import plan_run
from pipeline.summary import RunSummary
from rtprune.engines.contract import EngineIdentity
from tests.fixture_entries import unlistable_folder

PDF = b"%PDF-1.4 "


def _names(refs) -> list[str]:
    return [r.source_uri.rsplit("/", 1)[-1] for r in refs]


def _folder(tmp_path: Path, name: str = "in") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "good.pdf").write_bytes(PDF + b"good")
    return folder


def test_a_fifo_in_the_folder_is_skipped_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _folder(tmp_path)
    os.mkfifo(folder / "pipe.pdf")
    notes = ListingNotes()
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        refs = list_documents(str(folder), StorageConfig(), notes=notes)
    assert _names(refs) == ["good.pdf"] and notes.skipped == 1
    assert "pipe.pdf" in caplog.text and "not a regular file (a FIFO)" in caplog.text


def test_a_link_to_dev_zero_is_skipped(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "zero.pdf").symlink_to("/dev/zero")
    notes = ListingNotes()
    assert _names(list_documents(str(folder), StorageConfig(), notes=notes)) == ["good.pdf"]
    assert notes.skipped == 1


def test_a_link_out_of_the_input_folder_is_not_followed_unless_allowed(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    outside = tmp_path / "secret.pdf"
    outside.write_bytes(PDF + b"not for this corpus")
    (folder / "passwd.pdf").symlink_to(outside)
    notes = ListingNotes()
    assert _names(list_documents(str(folder), StorageConfig(), notes=notes)) == ["good.pdf"]
    assert notes.skipped == 1
    allowed = list_documents(str(folder), StorageConfig(follow_links_outside_input=True))
    link = next(r for r in allowed if r.source_uri.endswith("passwd.pdf"))
    assert link.source_uri == f"file://{folder / 'passwd.pdf'}"  # the listed name stays the link's
    assert link.uri == f"file://{outside}" and link.size_bytes == outside.stat().st_size  # read: the target


def test_a_link_inside_the_folder_is_hashed_by_its_target(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "store").mkdir()
    target = folder / "store" / "real.bin"  # not a .pdf: listed only through the link
    target.write_bytes(PDF + b"v1")
    (folder / "alias.pdf").symlink_to(target)
    first = next(
        r for r in list_documents(str(folder), StorageConfig()) if r.source_uri.endswith("alias.pdf")
    )
    os.utime(target, (1_000_000, 1_000_000))  # a changed target; the link itself is untouched
    second = next(
        r for r in list_documents(str(folder), StorageConfig()) if r.source_uri.endswith("alias.pdf")
    )
    assert first.doc_id == second.doc_id and first.content_hash != second.content_hash
    assert second.content_hash == f"size:{target.stat().st_size}-mtime:1000000.0"


def test_a_changed_link_target_is_redone_by_the_next_run(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    target = folder / "store.bin"
    target.write_bytes(PDF + b"v1")
    (folder / "alias.pdf").symlink_to(target)
    cfg = PipelineConfig(input=str(folder), output=str(tmp_path / "out"), plan={"buckets": 8})
    out = Output.open(cfg.output)
    docs = list_documents(cfg.input, cfg.storage)
    stamp = RunStamp("first", EngineIdentity("m", "tiny", "rtprune", "h"))
    rows = [
        new_row(stamp, {"doc_id": d.doc_id, "source_uri": d.source_uri, "content_hash": d.content_hash}, 0, 1)
        for d in docs
    ]
    entries = [
        {"doc_id": d.doc_id, "content_hash": d.content_hash, "source_uri": d.source_uri, "ok": True}
        for d in docs
    ]
    mark_open(out, "first")
    commit_part(out, "first", 0, price_pages(to_table(rows), load_pricing()), entries, "eh")
    target.write_bytes(PDF + b"version two, longer")  # the first run's text is stale now
    plan = plan_run(cfg, out, "eh")
    todo = [n for f in plan.todo_files for n in pq.read_table(f)["source_uri"].to_pylist()]
    plan.cleanup()
    assert todo == [f"file://{folder / 'alias.pdf'}"]


def test_a_folder_named_with_glob_characters_is_read_literally(tmp_path: Path) -> None:
    for name in ("in[1]", "reports?2024"):
        folder = _folder(tmp_path, name)
        (folder / f"only-{name[:2]}.pdf").write_bytes(PDF)
    (tmp_path / "in1").mkdir()
    (tmp_path / "in1" / "other.pdf").write_bytes(PDF)
    assert _names(list_documents(str(tmp_path / "in[1]"), StorageConfig())) == ["good.pdf", "only-in.pdf"]
    assert _names(list_documents(str(tmp_path / "reports?2024"), StorageConfig())) == [
        "good.pdf",
        "only-re.pdf",
    ]
    with pytest.raises(FileNotFoundError, match="input_glob"):
        list_documents(str(tmp_path / "in[1]" / "*.pdf"), StorageConfig())  # no other folder's files


def test_a_pattern_is_a_pattern_only_when_asked_for(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "in[1]")
    (tmp_path / "in1").mkdir()
    (tmp_path / "in1" / "other.pdf").write_bytes(PDF)
    assert _names(list_documents(str(tmp_path / "in1" / "*.pdf"), StorageConfig(), glob=True)) == [
        "other.pdf"
    ]
    escaped = str(tmp_path / "in[[]1]" / "*.pdf")  # a '[' inside a pattern is written [[]
    assert _names(list_documents(escaped, StorageConfig(), glob=True)) == ["good.pdf"]
    assert folder.exists()


def test_a_folder_that_cannot_be_listed_is_counted_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _folder(tmp_path)
    unlistable_folder(folder / "deep")
    notes = ListingNotes()
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        refs = list_documents(str(folder), StorageConfig(), notes=notes)
    assert _names(refs) == ["good.pdf"] and notes.skipped == 1
    assert "could not be listed" in caplog.text and "File name too long" in caplog.text


def test_an_unreadable_subfolder_is_counted_and_said(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    locked = folder / "locked"
    locked.mkdir()
    (locked / "hidden.pdf").write_bytes(PDF)
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("this user reads folders whatever their mode (root): see the PATH_MAX case")
        notes = ListingNotes()
        assert _names(list_documents(str(folder), StorageConfig(), notes=notes)) == ["good.pdf"]
        assert notes.skipped == 1
    finally:
        locked.chmod(0o755)


def test_planning_counts_what_it_skipped(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    os.mkfifo(folder / "pipe.pdf")
    (folder / "zero.pdf").symlink_to("/dev/zero")
    cfg = PipelineConfig(input=str(folder), output=str(tmp_path / "out"), plan={"buckets": 8})
    plan = plan_run(cfg, Output.open(cfg.output), "eh")
    plan.cleanup()
    assert (plan.listed, plan.inputs_skipped) == (1, 2)


def test_summaries_written_before_the_count_read_as_zero() -> None:
    fields = {
        "run_id": "r", "started_at": "t", "finished_at": "t", "wall_s": 1.0, "documents": 1, "pages_ok": 1,
        "pages_failed": 0, "visual_tokens": 1, "visual_tokens_kept": 1, "gpu_s": 0.0, "cpu_s": 0.0,
        "model_id": "m", "model_mode": "tiny", "prune_method": "none", "prune_config_hash": "h",
        "pricing_name": "p", "cost_direct_usd": 0.0, "cost_fully_loaded_usd": 0.0,
        "usd_per_1k_pages_direct": 0.0, "usd_per_1k_pages_fully_loaded": 0.0, "utilisation": 1.0,
    }  # fmt: skip
    assert RunSummary.model_validate(fields).inputs_skipped == 0


def test_inventory_files_are_literal_unless_a_pattern_is_asked_for(tmp_path: Path) -> None:
    from pipeline.store.inventory import inventory_files

    for name in ("inv[1]", "inv1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "part.csv").write_text("bkt,in/a.pdf,1,2025-01-01T00:00:00.000Z,e\n")
    cols = ("Bucket", "Key", "Size", "LastModifiedDate", "ETag")
    files, *_ = inventory_files(str(tmp_path / "inv[1]" / "part.csv"), StorageConfig(), cols)
    assert files == [f"file://{tmp_path / 'inv[1]' / 'part.csv'}"]
    files, *_ = inventory_files(str(tmp_path / "inv[1]" / "*.csv"), StorageConfig(), cols, glob=True)
    assert files == [f"file://{tmp_path / 'inv1' / 'part.csv'}"]
