"""Render documents in a persistent child process with a hard per-document timeout.

PyMuPDF can hang in get_pixmap on some files and can crash on others; neither can be interrupted from
Python inside the same process. So each render actor keeps one 'spawn' child (no inherited Ray/torch
state, no fork of a threaded process), sends it one document at a time, and kills and restarts it when a
document runs past the timeout or the child dies. The cost of a kill is one child start (~0.3 s).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from collections.abc import Callable
from multiprocessing.connection import Connection

from pipeline.config import RenderConfig
from pipeline.render import RenderOutcome, render_pdf

_START_TIMEOUT_S = 120.0
RenderFn = Callable[[bytes, RenderConfig], RenderOutcome]


def _child_main(conn: Connection, cfg: RenderConfig, render_fn: RenderFn) -> None:
    """Serve render requests until the parent closes the pipe."""
    import pymupdf  # noqa: F401  (imported before "ready" so start-up is not charged to a document)

    conn.send("ready")
    while True:
        try:
            data = conn.recv()
        except EOFError:
            return
        conn.send(render_fn(data, cfg))


class IsolatedRenderer:
    """One child process; `render` never raises for a bad document, it returns an outcome with error."""

    def __init__(self, cfg: RenderConfig, render_fn: RenderFn = render_pdf) -> None:
        self._cfg = cfg
        self._render_fn = render_fn  # module-level function: it is pickled into the spawned child
        self._ctx = mp.get_context("spawn")
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self.restarts = 0

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_child_main, args=(child, self._cfg, self._render_fn), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        # The document timeout starts after the child is ready: a slow start on a busy node is not the
        # document's fault.
        try:
            ready = parent.poll(_START_TIMEOUT_S) and parent.recv() == "ready"
        except EOFError:
            ready = False
        if not ready:  # the environment is broken (not the document): fail the job loudly
            self._proc.kill()
            raise RuntimeError(f"render child did not start within {_START_TIMEOUT_S:g} s "
                               f"(exit code {self._proc.exitcode}); spawn re-imports the main module, "
                               "so start jobs with python -m or a file guarded by if __name__ == '__main__'")

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
            return self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            code = self._proc.exitcode if self._proc is not None else None
            self._kill()
            return RenderOutcome(error=f"renderer process died (exit code {code})")

    def close(self) -> None:
        if self._proc is not None:
            self._kill()
            self.restarts -= 1  # a clean shutdown is not a restart

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: the daemon child dies with us anyway
            self.close()
