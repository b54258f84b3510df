"""Render documents in a persistent child process with a hard per-document timeout.

PyMuPDF can hang in get_pixmap on some files and can crash on others; neither can be interrupted from
Python inside the same process. So each render actor keeps one 'spawn' child (no inherited Ray/torch
state, no fork of a threaded process), sends it one document at a time, and kills and restarts it when a
document runs past the timeout or the child dies. The cost of a kill is one child start (~0.3 s).

The child also runs under a memory limit (RenderConfig.memory_limit_mb, as RLIMIT_DATA): a document that
makes MuPDF allocate without end fails with "out of memory" and the child is replaced, instead of the node
running out of memory. RLIMIT_DATA rather than RLIMIT_AS: the address-space limit also counts mapped code
(torch's and MuPDF's libraries: the child maps ~1.1 GB for ~450 MB of data) and the address space that
allocators reserve but never touch, so it would fail healthy documents at a limit that says little about
real memory; the data limit counts the heap and anonymous mappings, where pixmaps and page bytes live.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import resource
from collections.abc import Callable
from multiprocessing.connection import Connection

from pipeline.config import RenderConfig
from pipeline.stages.rasterizer import RenderOutcome, is_out_of_memory, render_pdf

_START_TIMEOUT_S = 120.0
RenderFn = Callable[[bytes, RenderConfig], RenderOutcome]


def _data_mb() -> float:
    """This process's data segment now (VmData), in MB: what RLIMIT_DATA is compared with."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmData:")) / 1024


def limit_memory(limit_mb: int) -> str:
    """Cap this process's data segment at limit_mb (0: no cap). Returns why it cannot run under the cap
    ("" when it can): a cap below what the process already holds would fail every document."""
    if limit_mb <= 0:
        return ""
    baseline_mb = _data_mb()
    if limit_mb < baseline_mb + 64:
        return (
            f"render.memory_limit_mb={limit_mb} is below what the render process needs to start "
            f"({baseline_mb:.0f} MB + 64 MB to work in)"
        )
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = limit_mb << 20 if hard == resource.RLIM_INFINITY else min(limit_mb << 20, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    return ""


def out_of_memory(exc: BaseException, cfg: RenderConfig) -> RenderOutcome:
    limit = f" ({cfg.memory_limit_mb} MB, render.memory_limit_mb)" if cfg.memory_limit_mb else ""
    detail = str(exc)[:200] or type(exc).__name__
    return RenderOutcome(
        error=f"out of memory: the document needs more than the render process's memory limit"
        f"{limit}: {detail}",
        restart=True,
    )


def _render_one(data: bytes, cfg: RenderConfig, render_fn: RenderFn) -> RenderOutcome:
    """The document's outcome, whatever happens inside: an exception that escapes render_fn (a MuPDF
    failure nobody foresaw) is the document's reason, not the child's death (whose only trace would be
    "renderer process died (exit code 1)"); the child is replaced after it, since MuPDF's state is
    unknown then."""
    try:
        return render_fn(data, cfg)
    except MemoryError as exc:  # the pages rendered so far are dropped with the frame: memory is back
        return out_of_memory(exc, cfg)
    except Exception as exc:  # noqa: BLE001 - any failure is this document's, reported with its reason
        if is_out_of_memory(exc):
            return out_of_memory(exc, cfg)
        return RenderOutcome(error=f"render failed: {type(exc).__name__}: {exc}"[:300], restart=True)


def _child_main(conn: Connection, cfg: RenderConfig, render_fn: RenderFn) -> None:
    """Serve render requests until the parent closes the pipe."""
    import pymupdf  # noqa: F401  (imported before "ready" so start-up is not charged to a document)

    refused = limit_memory(cfg.memory_limit_mb)
    conn.send(refused or "ready")
    if refused:
        return
    while True:
        try:
            data = conn.recv()
        except EOFError:
            return
        except (
            MemoryError
        ) as exc:  # the document's bytes alone do not fit; restart=True: the pipe is not reused
            conn.send(out_of_memory(exc, cfg))
            continue
        outcome = _render_one(data, cfg, render_fn)
        try:
            conn.send(outcome)
        except MemoryError as exc:  # pickling the pages needs a second copy of them
            del outcome
            conn.send(out_of_memory(exc, cfg))


class IsolatedRenderer:
    """One child process; `render` never raises for a bad document, it returns an outcome with error."""

    def __init__(self, cfg: RenderConfig, render_fn: RenderFn = render_pdf) -> None:
        self._cfg = cfg
        self._render_fn = render_fn  # module-level function (or a partial of one): pickled into the child
        self._ctx = mp.get_context("spawn")
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self.restarts = 0

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_child_main, args=(child, self._cfg, self._render_fn), daemon=True)
        try:
            proc.start()
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self._proc, self._conn = proc, parent  # only a started child is ever killed or joined
        # The document timeout starts after the child is ready: a slow start on a busy node is not the
        # document's fault.
        try:
            answer = parent.recv() if parent.poll(_START_TIMEOUT_S) else ""
        except EOFError:
            answer = ""
        if answer and answer != "ready":  # a configuration the child cannot run under: fatal
            self._proc.join(timeout=5)
            raise RuntimeError(f"render child refused to start: {answer}")
        if answer != "ready":  # the environment is broken (not the document): fail the job loudly
            self._proc.kill()
            raise RuntimeError(
                f"render child did not start within {_START_TIMEOUT_S:g} s "
                f"(exit code {self._proc.exitcode}); spawn re-imports the main module, "
                "so start jobs with python -m or a file guarded by if __name__ == '__main__'"
            )

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None
        self.restarts += 1

    def render(self, data: bytes) -> RenderOutcome:
        if self._proc is None or not self._proc.is_alive():
            self._start()
        assert self._conn is not None and self._proc is not None
        try:
            self._conn.send(data)
            if not self._conn.poll(self._cfg.timeout_s):
                self._kill()
                return RenderOutcome(error=f"timed out after {self._cfg.timeout_s:g} s (renderer killed)")
            outcome = self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            self._proc.join(timeout=5)  # the exit code is set once the dead child is reaped
            code = self._proc.exitcode
            self._kill()
            # SIGKILL from outside is most often the kernel's out-of-memory killer (or a cgroup limit).
            hint = ": killed, e.g. by the system running out of memory" if code == -9 else ""
            return RenderOutcome(error=f"renderer process died (exit code {code}{hint})")
        if outcome.restart:  # a child that hit its memory limit may hold a fragmented heap: start afresh
            self._kill()
        return outcome

    def close(self) -> None:
        if self._proc is not None:
            self._kill()
            self.restarts -= 1  # a clean shutdown is not a restart

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: the daemon child dies with us anyway
            self.close()
