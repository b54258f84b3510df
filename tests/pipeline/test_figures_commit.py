"""Figures in the commit protocol: written before their part, visible through its ledger record, never
left half-visible by a crash, cleaned as orphans like parts."""

from __future__ import annotations

import os
import time

import pytest
from structure_fixtures import grounding_text, rendered_page_row

from pipeline.cost.pricing import load_pricing
from pipeline.driver.commit import Committer
from pipeline.stages.ocr import page_image
from pipeline.stages.rows import OCR_OUTPUT_SCHEMA, to_table
from pipeline.stages.structure import structure_row
from pipeline.store import paths
from pipeline.store.output import Output, clean_orphans, clean_run_orphans, read_ledger
from pipeline.store.read import read_committed

PRICING = load_pricing()


@pytest.fixture(scope="module")
def ocr_rows() -> list[dict]:
    """Two documents of OCR output: one page with a figure each (the OCR stage's rows, cropped)."""
    rows = []
    for doc_id in ("da", "db"):
        row = rendered_page_row(doc_id, 0, 1)
        rows.append(structure_row({**row, "text": grounding_text()}, lambda row=row: page_image(row)))
    return rows


def _commit(out: Output, rows: list[dict], run_id: str = "r1", first_seq: int = 0) -> Committer:
    c = Committer(out, run_id, "eh", PRICING, commit_documents=1, commit_interval_s=3600, first_seq=first_seq)
    for row in rows:
        c.add(to_table([row], OCR_OUTPUT_SCHEMA))
    c.finish()
    return c


def test_each_part_commits_its_figures_and_links_them(tmp_path, ocr_rows):
    out = Output.open(str(tmp_path))
    _commit(out, ocr_rows)
    records = read_ledger(out)
    assert [(r["seq"], r["figure_folder"], r["figures"]) for r in records] == [
        (0, "figures/r1/000000", 1),
        (1, "figures/r1/000001", 1),
    ]
    pages = read_committed(str(tmp_path)).to_pylist()
    keys = [p["blocks"][1]["figure"] for p in pages]
    assert keys == ["figures/r1/000000/da-00000-001.png", "figures/r1/000001/db-00000-001.png"]
    for page, key in zip(pages, keys, strict=True):
        assert f"![]({key})" in page["markdown"]
        assert out.fs.cat_file(out.path(key)) == ocr_rows[0]["figures_png"][0]  # same page, same crop
    stored = sorted(p.split(str(tmp_path) + "/", 1)[1] for p in out.glob(paths.FIGURE_GLOB))
    assert stored == sorted(keys)  # one file per figure, no other


def test_a_crash_before_the_record_leaves_no_visible_figure_and_the_retry_replaces_it(tmp_path, ocr_rows):
    out = Output.open(str(tmp_path))
    # a crashed attempt at seq 0: its figures (and a stray file) were written, its record never
    stale = out.path(paths.figure_key("r1", 0, "gone", 0, 1))
    out.fs.makedirs(stale.rsplit("/", 1)[0], exist_ok=True)
    out.fs.pipe_file(stale, b"half")
    assert read_committed(str(tmp_path)).num_rows == 0 and read_ledger(out) == []
    _commit(out, ocr_rows[:1])  # the resumed run commits seq 0 again
    assert not out.fs.exists(stale)
    assert [len(out.glob(f"{r['figure_folder']}/*")) for r in read_ledger(out)] == [1]


def test_orphan_figures_are_cleaned_after_grace_and_committed_ones_stay(tmp_path, ocr_rows):
    out = Output.open(str(tmp_path))
    _commit(out, ocr_rows[:1])
    orphan = out.path(paths.figure_key("r1", 5, "da", 0, 1))  # seq 5 never got its record
    other_run = out.path(paths.figure_key("r2", 0, "da", 0, 1))
    for path in (orphan, other_run):
        out.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        out.fs.pipe_file(path, b"png")
    assert clean_run_orphans(out, "r1", grace_s=3600) == []  # young: a live run may be writing
    old = time.time() - 7200
    for path in (orphan, other_run):
        os.utime(path, (old, old))
    assert clean_run_orphans(out, "r1", grace_s=3600) == [orphan]
    assert clean_orphans(out, read_ledger(out), grace_s=3600) == [other_run]
    committed = read_committed(str(tmp_path))["blocks"][0][1]["figure"].as_py()
    assert out.fs.exists(out.path(committed))


def test_rows_without_figures_commit_as_before(tmp_path, ocr_rows):
    out = Output.open(str(tmp_path))
    row = rendered_page_row("dc", 0, 1)
    _commit(out, [structure_row({**row, "text": "plain words"}, None)])
    (record,) = read_ledger(out)
    assert "figure_folder" not in record and out.glob(paths.FIGURE_GLOB) == []
