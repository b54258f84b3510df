"""A vLLM child process ends when the process that started it dies.

vLLM's engine core runs in a child process of the front end (AsyncLLM / LLM), started by multiprocessing.
vLLM stops it when the front end shuts down, and its own workers watch the engine core (a "death pipe"),
but nothing in vLLM watches the front end: a front end killed outright (a Ray actor SIGKILLed, a process
that calls os._exit) leaves its engine core running, re-parented, holding memory (on a GPU, the memory a
restarted engine needs).

`watch_parent()` runs in every vLLM process through the plugin hook. In a multiprocessing child (the
engine core, a worker) it starts a daemon thread that waits on multiprocessing's parent sentinel (a pipe
whose other end only the parent holds: it becomes readable when the parent is gone, whatever killed it,
with no polling) and then sends this process SIGTERM, which vLLM's engine core turns into its own clean
shutdown (it then ends its workers); if the process is still alive after `grace_s`, it exits. In a
process that multiprocessing did not start (a Ray actor, `vllm serve`, a test) it does nothing.
"""

from __future__ import annotations

import os
import signal
import threading
import time

_started = False
_lock = threading.Lock()


def watch_parent(grace_s: float = 20.0) -> bool:
    """Start the watch in this process once, if it is a multiprocessing child; -> whether it watches."""
    import multiprocessing

    global _started
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return False
    with _lock:
        if not _started:
            threading.Thread(
                target=_wait_then_stop,
                args=(parent.sentinel, grace_s),
                daemon=True,
                name="rtprune-parent-lifeline",
            ).start()
            _started = True
    return True


def _wait_then_stop(sentinel: int, grace_s: float) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])  # returns only when the parent has exited
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s)
    os._exit(1)  # the clean shutdown did not finish in time
