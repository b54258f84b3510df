"""The progress display's pure logic: counts, rate, ETA and the text of one line."""

from __future__ import annotations

import pytest

from pipeline.driver.progress import (
    ProgressCounter,
    eta_seconds,
    format_duration,
    format_failure,
    format_progress,
)


def test_rate_and_eta_follow_the_batches_fed_in():
    counter = ProgressCounter(documents_total=10, started_s=100.0)
    start = counter.snapshot(100.0)
    assert (start.pages_per_s, start.eta_s, start.documents_done) == (None, None, 0)  # nothing to divide yet
    counter.add(pages=6, pages_failed=1, documents_done=2)
    counter.add(pages=4, pages_failed=0, documents_done=4)
    snap = counter.snapshot(104.0)
    assert (snap.documents_done, snap.pages_done, snap.pages_failed) == (4, 10, 1)
    assert snap.pages_per_s == pytest.approx(10 / 4.0)
    assert snap.eta_s == pytest.approx(4.0 / 4 * 6)  # 1 s per document so far, 6 documents left


def test_documents_done_never_goes_back_nor_past_the_total():
    counter = ProgressCounter(documents_total=3, started_s=0.0)
    counter.add(pages=2, pages_failed=0, documents_done=2)
    counter.add(pages=0, pages_failed=0, documents_done=1)
    assert counter.documents_done == 2
    counter.add(pages=5, pages_failed=0, documents_done=9)
    assert counter.documents_done == 3 and counter.snapshot(5.0).eta_s == 0.0


@pytest.mark.parametrize(
    ("done", "total", "elapsed_s", "eta"),
    [(0, 5, 10.0, None), (5, 5, 10.0, 0.0), (1, 5, 0.0, None), (1, 3, 30.0, 60.0), (0, 0, 0.0, 0.0)],
)
def test_eta(done, total, elapsed_s, eta):
    assert eta_seconds(done, total, elapsed_s) == eta


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (0, "0s"), (7.4, "7s"), (59.6, "1m00s"), (125, "2m05s"), (3599, "59m59s"), (7384, "2h03m")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_the_progress_line_says_documents_pages_failures_rate_and_eta():
    counter = ProgressCounter(documents_total=6, started_s=0.0)
    counter.add(pages=9, pages_failed=2, documents_done=3)
    line = format_progress(counter.snapshot(12.0))
    assert line == "documents 3/6 | pages 9 (2 failed) | 0.75 pages/s | elapsed 12s | ETA 12s"
    clean = ProgressCounter(documents_total=2, started_s=0.0)
    assert "failed" not in format_progress(clean.snapshot(1.0))


def test_until_the_first_page_comes_back_the_line_says_the_engine_is_starting():
    counter = ProgressCounter(documents_total=2, started_s=0.0)
    assert format_progress(counter.snapshot(5.0)) == (
        "documents 0/2 | pages 0 | starting the OCR engine | elapsed 5s | ETA ?"
    )
    counter.add(pages=1, pages_failed=0, documents_done=0)
    assert "starting" not in format_progress(counter.snapshot(10.0))
    assert "0.10 pages/s" in format_progress(counter.snapshot(10.0))


def test_a_failure_line_names_the_document_page_stage_and_reason():
    assert format_failure("s3://b/a.pdf", 2, "render", "timeout\nafter 120 s") == (
        "failed: 's3://b/a.pdf' page 3: render: timeout after 120 s"
    )
    assert (
        format_failure("s3://b/bad.pdf", -1, "read", "not a PDF")
        == "failed: 's3://b/bad.pdf': read: not a PDF"
    )
    long = format_failure("a.pdf", 0, "ocr", "x" * 500, max_chars=40)
    assert long.endswith("...") and len(long.split(": ", 3)[-1]) == 40
