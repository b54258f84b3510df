"""Hostile document names on the console: a newline or an ANSI escape in a key (or in an error that
quotes it) never forges a log line or colours the terminal; every name is shown escaped, repr-style."""

from __future__ import annotations

import io
import logging

import pytest

from pipeline.driver.console import ConsoleProgress
from pipeline.driver.progress import format_failure
from pipeline.redact import describe_error, escape_controls
from pipeline.stages.rows import RunStamp, mark_error, new_row, to_table
from rtprune.engines.contract import EngineIdentity

FORGED = "file:///in/a.pdf\n07:51:22 pipeline committed part 000099: 8 documents\x1b[31m.pdf"
RAW = ("\n", "\r", "\x1b", "\u202e", "\x00")


def _clean(text: str) -> bool:
    return not any(c in text for c in RAW)


def test_escape_controls_is_repr_style_and_keeps_printable_text():
    assert escape_controls("a\nb\x1b[31mc\u202ed é ✓") == "a\\nb\\x1b[31mc\\u202ed é ✓"
    assert escape_controls(escape_controls("x\ty")) == "x\\ty"  # idempotent: no double escapes


def test_a_failure_line_escapes_the_name_and_the_reason():
    line = format_failure(FORGED, 0, "read", f"FileNotFoundError: {FORGED}\x1b[0m")
    assert _clean(line), line
    assert line.startswith("failed: 'file:///in/a.pdf\\n07:51:22 pipeline committed part")
    assert "\\x1b[31m" in line


def test_the_console_logs_hostile_names_on_one_line(caplog):
    stamp = RunStamp("run-1", EngineIdentity("tiny", "tiny", "none", "h"))
    row = new_row(stamp, {"doc_id": "d", "source_uri": FORGED, "content_hash": "c"}, -1, -1)
    progress = ConsoleProgress(io.StringIO(), interval_s=3600)
    progress.start(documents_total=1)
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        progress.observe(to_table([mark_error(row, "read", "boom\x1b[2J")]), documents_done=1)
    progress.close()
    (message,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("failed:")]
    assert _clean(message) and "committed part 000099" in message, message


@pytest.mark.parametrize("text", [FORGED, "line one\nline two", "bidi \u202e override"])
def test_error_texts_are_one_line_without_raw_control_characters(text):
    shown = describe_error(FileNotFoundError(text))
    assert _clean(shown) and shown.startswith("FileNotFoundError: "), shown


def test_the_jobs_log_filter_escapes_control_characters_in_any_message():
    from jobs.digitize import _RedactingFilter

    record = logging.LogRecord("pipeline", logging.INFO, __file__, 1, "listed %s", (FORGED,), None)
    assert _RedactingFilter([]).filter(record)
    assert _clean(record.getMessage()) and "\\n07:51:22" in record.getMessage()
