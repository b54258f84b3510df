"""The console of a run: the progress display on a terminal and in a log, failed rows shown with their
reason, and Ray Data's own output and known-noise warnings off unless asked for."""

from __future__ import annotations

import io
import logging
import time

import pytest

from pipeline.driver.console import (
    ConsoleHandler,
    ConsoleProgress,
    DropMessages,
    add_filter_once,
    batch_counts,
    configure_ray_data,
)
from pipeline.stages.rows import RunStamp, mark_error, new_row, to_table
from rtprune.engines.contract import EngineIdentity

STAMP = RunStamp("run-1", EngineIdentity("tiny", "tiny", "none", "h"))


def _batch(doc: str, pages: int, failed: dict[int, tuple[str, str]] | None = None):
    info = {"doc_id": doc, "source_uri": f"file:///in/{doc}.pdf", "content_hash": "c"}
    rows = [new_row(STAMP, info, i, pages) for i in range(pages)]
    for i, (stage, reason) in (failed or {}).items():
        rows[i] = mark_error(rows[i], stage, reason)
    return to_table(rows)


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_batch_counts_finds_the_failed_rows():
    rows, failures = batch_counts(_batch("a", 3, {1: ("render", "page raster too large")}))
    assert rows == 3 and failures == [("file:///in/a.pdf", 1, "render", "page raster too large")]


def test_in_a_log_the_display_writes_plain_lines_and_a_final_one(caplog):
    out, clock = io.StringIO(), Clock()
    progress = ConsoleProgress(out, interval_s=3600, clock=clock)
    assert not progress.tty
    progress.start(documents_total=2)
    clock.now_s = 4.0
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        progress.observe(_batch("a", 3, {2: ("ocr", "CUDA out of memory")}), documents_done=1)
    progress.close()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()  # nothing a log file cannot show
    assert out.getvalue().splitlines() == [
        "progress: documents 1/2 | pages 3 (1 failed) | 0.75 pages/s | elapsed 4s | ETA 4s"
    ]
    assert "failed: 'file:///in/a.pdf' page 3: ocr: CUDA out of memory" in caplog.text


def test_in_a_log_a_line_comes_every_interval_while_nothing_arrives():
    out = io.StringIO()
    progress = ConsoleProgress(out, interval_s=0.05)
    progress.start(documents_total=1)
    deadline = time.monotonic() + 10
    while out.getvalue().count("\n") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    progress.close()
    assert out.getvalue().count("progress: documents 0/1") >= 3  # two periodic lines and the final one


def test_on_a_terminal_the_line_is_redrawn_in_place_and_log_lines_go_above_it():
    out, clock = Terminal(), Clock()
    progress = ConsoleProgress(out, clock=clock)
    handler = ConsoleHandler(out)
    handler.progress = progress
    logger = logging.getLogger("test-console-terminal")
    logger.addHandler(handler)
    try:
        progress.start(documents_total=2)
        clock.now_s = 2.0
        progress.observe(_batch("a", 2), documents_done=1)
        logger.warning("committed part 000000")
        progress.close()
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "\r\x1b[Kcommitted part 000000\n" in text  # the status line is cleared before a log line
    last = text.rsplit("\r\x1b[K", 1)[1]
    assert last == "progress: documents 1/2 | pages 2 | 1.00 pages/s | elapsed 2s | ETA 2s\n"
    assert text.count("\n") == 2  # the log line and the final status: every redraw stayed on its line


def test_failure_lines_stop_after_the_cap_and_say_so(caplog):
    progress = ConsoleProgress(io.StringIO(), interval_s=3600, max_failure_lines=2)
    progress.start(documents_total=1)
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        progress.observe(_batch("a", 4, {i: ("render", f"reason {i}") for i in range(4)}), documents_done=1)
    progress.close()
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("failed:")]
    assert failed == [
        "failed: 'file:///in/a.pdf' page 1: render: reason 0",
        "failed: 'file:///in/a.pdf' page 2: render: reason 1",
    ]
    assert "further failed rows are not shown" in caplog.text


def _record(logger: str, msg: str) -> logging.LogRecord:
    return logging.LogRecord(logger, logging.WARNING, __file__, 1, msg, None, None)


def test_ray_data_is_quiet_by_default_and_verbose_on_request():
    pytest.importorskip("ray.data")
    from ray.data import DataContext

    streams = [h for h in logging.getLogger("ray.data").handlers if isinstance(h, logging.StreamHandler)]
    assert streams  # Ray Data's console handler is there to be quieted
    configure_ray_data(verbose=False)
    ctx = DataContext.get_current()
    assert not ctx.enable_progress_bars and not ctx.print_on_execution_start
    assert all(h.level == logging.WARNING for h in streams)
    configure_ray_data(verbose=True)
    assert ctx.enable_progress_bars and ctx.print_on_execution_start
    assert all(h.level == logging.INFO for h in streams)
    configure_ray_data(verbose=False)


def test_the_noise_filters_drop_only_the_known_messages():
    pytest.importorskip("ray.data")
    configure_ray_data(verbose=False)
    configure_ray_data(verbose=False)  # idempotent: one filter per logger, however many runs
    name = "ray.data._internal.execution.operators.map_operator"
    logger = logging.getLogger(name)
    assert sum(isinstance(f, DropMessages) for f in logger.filters) == 1
    assert not logger.filter(
        _record(
            name,
            "Specifying both num_cpus and num_gpus for map tasks is experimental, "
            "and may result in scheduling or stability issues.",
        )
    )
    assert logger.filter(_record(name, "Actor pool scaled down: out of memory"))  # anything else passes
    add_filter_once("test-noise", DropMessages("noise"))
    assert not logging.getLogger("test-noise").filter(_record("test-noise", "noise: ignore"))
