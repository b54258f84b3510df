"""Document flags, the page policy's counts in the summary and the cost report, and output written
before those columns existed."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.cost.accounting import RunInfo, price_pages, summarize
from pipeline.cost.pricing import load_pricing
from pipeline.cost.report import build_tables
from pipeline.driver.commit import SUMMARY_COLUMNS, Committer
from pipeline.schema import COLUMN_NAMES, PAGES_SCHEMA
from pipeline.stages.page_policy import flag_document, recovery_counts
from pipeline.stages.rows import RunStamp, mark_error, new_row, to_table
from pipeline.store.output import Output
from pipeline.store.read import read_committed
from rtprune.engines.contract import EngineIdentity

PRICING = load_pricing()
STAMP = RunStamp("r1", EngineIdentity("m", "tiny", "rtprune", "h"))
# (text_source, finish_reason, ocr_attempts) per page; None = an OCR error row.
GOOD = ("ocr", "eos", 1)
RECOVERED = ("ocr_retry", "eos", 2)
FELL_BACK = ("text_layer", "repetition", 2)
STILL_LOOPS = ("ocr", "length", 2)


def _doc(doc_id: str, pages: list[tuple[str, str, int] | None]) -> list[dict]:
    doc = {"doc_id": doc_id, "source_uri": f"s3://b/{doc_id}.pdf", "content_hash": "c"}
    rows = []
    for i, page in enumerate(pages):
        row = new_row(STAMP, doc, i, len(pages)) | {"text": "t", "gpu_s": 0.5, "encode_s": 0.5}
        if page is None:
            rows.append(mark_error(row | {"ocr_attempts": 1}, "ocr", "ValueError"))
        else:
            rows.append(row | dict(zip(("text_source", "finish_reason", "ocr_attempts"), page, strict=True)))
    return rows


def _flags(pages, share):
    return flag_document(to_table(_doc("d", pages)), share)["doc_flagged"].to_pylist()


def test_a_document_is_flagged_when_its_failed_share_exceeds_the_threshold():
    assert _flags([GOOD, RECOVERED, GOOD, FELL_BACK], 0.25) == [False] * 4  # 1 of 4 is not above 1/4
    assert _flags([GOOD, RECOVERED, STILL_LOOPS, FELL_BACK], 0.25) == [True] * 4
    assert _flags([GOOD, None], 0.25) == [True, True]  # an error row is a failed page
    assert _flags([RECOVERED, RECOVERED], 0.0) == [False, False]  # a retry that worked is not a failure
    doc_error = mark_error(
        new_row(STAMP, {"doc_id": "e", "source_uri": "u", "content_hash": "c"}, -1, -1),
        "render",
        "out of memory",
    )
    assert flag_document(to_table([doc_error]), 0.9)["doc_flagged"].to_pylist() == [True]


def test_summary_and_report_count_what_the_rows_say(tmp_path):
    docs = {"a": [GOOD, RECOVERED, FELL_BACK], "b": [STILL_LOOPS, None], "c": [GOOD, GOOD]}
    committer = Committer(
        Output.open(str(tmp_path)),
        "r1",
        "eh",
        PRICING,
        commit_documents=2,
        commit_interval_s=3600,
        first_seq=0,
        flag_document_share=0.4,
    )
    for doc_id, pages in docs.items():
        committer.add(to_table(_doc(doc_id, pages)))
    committer.finish()
    rows = read_committed(str(tmp_path))
    assert rows.num_rows == 7 and sorted(set(rows["doc_id"].to_pylist())) == ["a", "b", "c"]  # each page once
    flagged = {
        d for d, f in zip(rows["doc_id"].to_pylist(), rows["doc_flagged"].to_pylist(), strict=True) if f
    }
    assert flagged == {"b"}  # a: 1 of 3 failed (fell back) <= 0.4; b: 2 of 2

    slim = pa.concat_tables(committer.stats.slim)
    assert set(SUMMARY_COLUMNS) <= set(slim.column_names)
    info = RunInfo("r1", "2026-01-01T00:00:00+00:00", "2026-01-01T00:10:00+00:00", 600.0, STAMP.identity)
    summary = summarize(slim, info, {"g6.xlarge": 600.0}, PRICING)
    assert (summary.pages_ok, summary.pages_failed) == (6, 1)
    assert (summary.pages_retried, summary.pages_recovered, summary.pages_text_layer) == (3, 1, 1)
    assert summary.documents_flagged == 1
    assert recovery_counts(rows) == {"pages_retried": 3, "pages_recovered": 1, "pages_text_layer": 1}

    total = build_tables(rows, [summary], [["run"]])[0].total
    assert (total.pages_retried, total.pages_recovered, total.pages_text_layer) == (3, 1, 1)


def _write_old_part(tmp_path) -> pa.Table:
    """A committed part as written before text_source, ocr_attempts and doc_flagged existed."""
    rows = _doc("old", [GOOD, GOOD]) + [
        mark_error(
            new_row(STAMP, {"doc_id": "bad", "source_uri": "u", "content_hash": "c"}, -1, -1), "render", "x"
        )
    ]
    new = {"text_source", "ocr_attempts", "doc_flagged"}
    old = price_pages(to_table(rows), PRICING).select([c for c in COLUMN_NAMES if c not in new])
    out = Output.open(str(tmp_path))
    buf = io.BytesIO()
    pq.write_table(old, buf)
    out.fs.makedirs(out.path("pages", "r0"), exist_ok=True)
    out.fs.pipe_file(out.part_path("r0", 0), buf.getvalue())
    record = {
        "run_id": "r0",
        "seq": 0,
        "file": "pages/r0/part-000000.parquet",
        "rows": old.num_rows,
        "engine_config_hash": "eh",
        "committed_at": "2025-01-01T00:00:00+00:00",
        "documents": [
            {"doc_id": d, "content_hash": "c", "source_uri": "u", "ok": d == "old"} for d in ("old", "bad")
        ],
    }
    out.put_atomic(out.ledger_path("r0", 0), json.dumps(record).encode())
    return old


def test_parts_written_before_the_new_columns_are_read_with_defaults(tmp_path):
    old = _write_old_part(tmp_path)
    table = read_committed(str(tmp_path))
    assert table.schema == PAGES_SCHEMA and table.num_rows == 3
    assert table["text_source"].to_pylist() == ["ocr", "ocr", ""]
    assert table["ocr_attempts"].to_pylist() == [1, 1, 0] and table["doc_flagged"].to_pylist() == [False] * 3
    assert table.select(old.column_names).cast(old.schema).equals(old)


def test_the_cost_report_reads_old_output(tmp_path, capsys):
    from jobs.cost_report import main

    _write_old_part(tmp_path / "out")
    assert (
        main(["--output", str(tmp_path / "out"), "--by", "run", "--out-dir", str(tmp_path / "report")]) == 0
    )
    md = (tmp_path / "report" / "cost_report.md").read_text()
    # run, runs, pages ok, failed, retried, recovered, text layer
    assert "| r1 | 1 | 2 | 1 | 0 | 0 | 0 |" in md  # the rows carry run r1
