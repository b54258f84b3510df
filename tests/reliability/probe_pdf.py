"""What a plain PyMuPDF renderer does with a file, measured in a capped child process.

The child (this file run as a script) sets an address-space limit, imports PyMuPDF and says it is ready,
then opens the file and renders the first pages at 144 dpi, printing one JSON line per step, so a parent
that kills it on timeout still knows how far it got. The timeout counts from "ready", as the pipeline's
render timeout counts from its child's start (pipeline/stages/isolation.py): the child's own start-up (an
import that takes seconds on a busy machine) is not the document's. Used by the corpus self-tests and to write
docs/reliability.md; it is the yardstick the pipeline's own render limits are compared against.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ProbeResult:
    opened: bool = False
    open_error: str = ""
    needs_pass: bool = False
    is_pdf: bool = False
    page_count: int = -1
    open_s: float = 0.0
    renders: list[dict] = field(default_factory=list)  # page, ok, seconds, pixels or error
    timed_out: bool = False  # the document ran past timeout_s (counted from the child's "ready")
    start_timed_out: bool = False  # the child never got ready (its environment, not the document)
    exit_code: int = 0
    peak_rss_mb: float = 0.0


# The child's start-up (interpreter, PyMuPDF import) is not charged to the document, but a child that never
# gets ready is a broken environment: it is killed after this long.
START_TIMEOUT_S = 600.0


def probe(data: bytes, timeout_s: float = 20.0, mem_limit_mb: int = 2048, pages: int = 2) -> ProbeResult:
    """Run the child on `data`; kill it timeout_s after it is ready. Never raises for anything the file does.
    The parent samples the child's RSS, so a child killed mid-render still reports its peak."""
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f, tempfile.TemporaryFile("w+") as out:
        f.write(data)
        f.flush()
        cmd = [sys.executable, str(Path(__file__).resolve()), f.name, str(mem_limit_mb), str(pages)]
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        peak_rss, timed_out, started = _watch(child, timeout_s, out.fileno())
        out.seek(0)
        result = _collect(out.read(), child.returncode, timed_out)
    result.start_timed_out = not started
    result.peak_rss_mb = max(result.peak_rss_mb, peak_rss / 2**20)
    return result


def _ready(events_fd: int) -> bool:
    """Whether the child has said it is ready (its first line, in the file its stdout goes to)."""
    return os.pread(events_fd, 32, 0).startswith(b'{"event": "ready"')


def _watch(child: subprocess.Popen, timeout_s: float, events_fd: int) -> tuple[int, bool, bool]:
    """Wait for the child, sampling its RSS every 50 ms; kill it timeout_s after it said it is ready (or
    START_TIMEOUT_S after its start if it never does). -> (peak RSS, timed out, got ready)."""
    import psutil

    deadline, peak, ready = time.monotonic() + START_TIMEOUT_S, 0, False
    proc = psutil.Process(child.pid)
    while child.poll() is None:
        if not ready and _ready(events_fd):
            ready, deadline = True, time.monotonic() + timeout_s
        if time.monotonic() > deadline:
            child.kill()
            child.wait()
            return peak, ready, ready
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.NoSuchProcess:  # exited between poll() and the sample
            break
        time.sleep(0.05)
    child.wait()
    return peak, False, ready or _ready(events_fd)


def _collect(stdout: str, exit_code: int, timed_out: bool) -> ProbeResult:
    result = ProbeResult(timed_out=timed_out, exit_code=exit_code)
    for line in stdout.splitlines():
        event = json.loads(line)
        kind = event.pop("event")
        result.peak_rss_mb = max(result.peak_rss_mb, event.pop("rss_mb", 0.0))
        if kind == "ready":
            continue
        if kind == "open":
            for key, value in event.items():
                setattr(result, key, value)
        elif kind == "render":
            result.renders.append(event)
    return result


def _peak_rss_mb() -> float:
    """This process's own RSS high-water mark. Not getrusage's ru_maxrss: Linux keeps that across execve,
    so a child started from a large parent (a test process holding models) reports the parent's size."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no procfs: best available


def _emit(event: str, **fields: object) -> None:
    rss_mb = _peak_rss_mb()
    print(json.dumps({"event": event, "rss_mb": rss_mb, **fields}), flush=True)


def _child(path: str, mem_limit_mb: int, pages: int) -> None:
    limit = mem_limit_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import pymupdf

    _emit("ready")  # the parent's render budget starts here
    start = time.perf_counter()
    try:
        doc = pymupdf.open(path, filetype="pdf")  # force PDF: the name says .pdf, nothing else decides
    except Exception as exc:  # any failure to open is the finding we are here to record
        _emit(
            "open",
            opened=False,
            open_error=f"{type(exc).__name__}: {exc}",
            open_s=time.perf_counter() - start,
        )
        return
    info = {"needs_pass": bool(doc.needs_pass), "is_pdf": bool(doc.is_pdf)}
    count = -1 if doc.needs_pass else doc.page_count
    _emit("open", opened=True, page_count=count, open_s=time.perf_counter() - start, **info)
    for index in range(min(max(count, 0), pages)):
        _render_one(doc, index)


def _render_one(doc: object, index: int) -> None:
    start = time.perf_counter()
    try:
        pix = doc[index].get_pixmap(dpi=144)  # type: ignore[index]
        _emit(
            "render", page=index, ok=True, seconds=time.perf_counter() - start, pixels=pix.width * pix.height
        )
    except Exception as exc:  # MuPDF reports malloc failures and syntax errors as exceptions
        _emit(
            "render",
            page=index,
            ok=False,
            seconds=time.perf_counter() - start,
            error=f"{type(exc).__name__}: {exc}",
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    _child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
