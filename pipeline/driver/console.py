"""What a digitize run prints: one progress display (in place on a terminal, periodic plain lines in a log
file or CI), failed rows as they arrive, and Ray Data kept quiet unless asked. The numbers and the text
come from pipeline.driver.progress; this module only decides when and where they are written."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TextIO

from pipeline.cost.routing_savings import routing_savings
from pipeline.driver.progress import ProgressCounter, format_failure, format_progress

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("pipeline")

_CLEAR_LINE = "\r\x1b[K"


class DropMessages(logging.Filter):
    """Drops records whose message starts with one of `prefixes`: a narrow filter for one known warning
    at the logger that emits it, so everything else from that logger still shows."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self._prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._prefixes)


def add_filter_once(logger_name: str, flt: DropMessages) -> None:
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, DropMessages) and f._prefixes == flt._prefixes for f in logger.filters):
        logger.addFilter(flt)


def configure_ray_data(verbose: bool) -> None:
    """Ray Data's own progress (per-operator bars on a terminal; on a log, a resource dump of every
    operator every few seconds) and its execution-plan lines, on only when `verbose`. Its log file under
    the Ray session folder keeps every line either way."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = verbose
    ctx.print_on_execution_start = verbose
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler):  # the console one; the file handler is no stream
            handler.setLevel(logging.INFO if verbose else logging.WARNING)
    # Ray Data warns once that its bars are off and how to turn them on; here they are off on purpose and
    # the switch is the job's own flag, so the hint would send users to the wrong place.
    add_filter_once("ray.data._internal.progress", DropMessages("Progress bars disabled"))
    # The OCR pool asks for CPUs beside its GPU on purpose (pools.ocr_num_cpus: the engine's host-side
    # work); Ray Data calls that combination experimental on every run, and a user cannot act on it.
    add_filter_once(
        "ray.data._internal.execution.operators.map_operator",
        DropMessages("Specifying both num_cpus and num_gpus for map tasks is experimental"),
    )


def batch_counts(batch: pa.Table) -> tuple[int, list[tuple[str, int, str, str]]]:
    """(rows, failed rows as (source_uri, page_index, error_stage, error)) of one output batch."""
    import pyarrow.compute as pc  # here, not at import: jobs/digitize imports this module before any work

    failed = batch.filter(pc.not_equal(batch["status"], "ok"))
    cols = [failed[c].to_pylist() for c in ("source_uri", "page_index", "error_stage", "error")]
    return batch.num_rows, list(zip(*cols, strict=True))


class ConsoleProgress:
    """The run's progress line. On a terminal it is redrawn in place (every second and on every batch) and
    log lines are written above it; elsewhere a plain line is written every `interval_s`, and once at the
    end. Failed rows are logged (through `log`, so they are redacted like every log line), the first
    `max_failure_lines` of them; the rest are counted and are in the output's error column."""

    def __init__(
        self,
        stream: TextIO,
        interval_s: float = 30.0,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_failure_lines: int = 20,
    ) -> None:
        self._stream, self._clock, self._max_failures = stream, clock, max_failure_lines
        self.tty = stream.isatty() if tty is None else tty
        self._interval_s = 1.0 if self.tty else interval_s
        self._counter: ProgressCounter | None = None
        self._failures_logged = 0
        self._shown = False  # a status line is on the terminal's last line
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, documents_total: int) -> None:
        self._counter = ProgressCounter(documents_total, self._clock())
        self._stop.clear()
        self._thread = threading.Thread(target=self._tick, name="progress", daemon=True)
        self._thread.start()

    def observe(self, batch: pa.Table, documents_done: int) -> None:
        rows, failures = batch_counts(batch)
        assert self._counter is not None, "start() comes first"
        with self._lock:
            # Rows are priced at commit: here only the seconds count (0 $/s).
            self._counter.add(rows, len(failures), documents_done, routing_savings(batch, 0.0))
        self._log_failures(failures)
        if self.tty:
            self.redraw()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._counter is not None:
                self._write_status(final=True)
        self._counter = None

    def write_above(self, text: str) -> None:
        """A log line: on a terminal the status line is cleared first and redrawn after it."""
        with self._lock:
            self._stream.write((_CLEAR_LINE if self._shown else "") + text + "\n")
            self._shown = False
            if self.tty and self._counter is not None and not self._stop.is_set():
                self._write_status()
            self._stream.flush()

    def redraw(self) -> None:
        with self._lock:
            if self._counter is not None:
                self._write_status()

    def _write_status(self, final: bool = False) -> None:
        assert self._counter is not None, "start() comes first"
        line = "progress: " + format_progress(self._counter.snapshot(self._clock()))
        if self.tty:
            self._stream.write(_CLEAR_LINE + line + ("\n" if final else ""))
            self._shown = not final
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.redraw()

    def _log_failures(self, failures: Iterable[tuple[str, int, str, str]]) -> None:
        for source_uri, page_index, stage, error in failures:
            self._failures_logged += 1
            if self._failures_logged <= self._max_failures:
                log.warning(format_failure(source_uri, page_index, stage, error))
            if self._failures_logged == self._max_failures + 1:
                log.warning("further failed rows are not shown here: see the error column of the output")


class ConsoleHandler(logging.StreamHandler):
    """A log handler that writes through the progress display while one runs, so that a terminal's
    status line is never left in the middle of a log line."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.progress: ConsoleProgress | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.progress is None:
            super().emit(record)
            return
        try:
            self.progress.write_above(self.format(record))
        except Exception:  # logging must never stop the job
            self.handleError(record)
