"""rtprune.engines.vllm.plugin.lifeline: a multiprocessing child (as vLLM's engine core is) ends when its parent is
killed outright, through its SIGTERM handling or, if that does not end it, after the grace time."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import psutil
import pytest

from rtprune.engines.vllm.plugin.lifeline import watch_parent

CTX = multiprocessing.get_context("fork")
GRACE_S = 3.0


def _grandchild(report, ignore_sigterm: bool) -> None:
    if ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    report.put((os.getpid(), watch_parent(grace_s=GRACE_S)))
    time.sleep(120)


def _child(report, ignore_sigterm: bool) -> None:
    CTX.Process(target=_grandchild, args=(report, ignore_sigterm)).start()
    time.sleep(120)


@pytest.mark.parametrize("ignore_sigterm", [False, True], ids=["sigterm", "grace"])
def test_a_child_ends_when_its_parent_is_killed(ignore_sigterm):
    report = CTX.Queue()
    parent = CTX.Process(target=_child, args=(report, ignore_sigterm))
    parent.start()
    pid, watching = report.get(timeout=60)
    child = psutil.Process(pid)
    assert watching
    time.sleep(0.5)
    assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE  # alive while its parent is
    started = time.monotonic()
    parent.kill()
    parent.join()
    child.wait(timeout=20)
    waited_s = time.monotonic() - started
    assert waited_s >= GRACE_S if ignore_sigterm else waited_s < GRACE_S


def test_nothing_is_watched_in_a_process_multiprocessing_did_not_start():
    assert watch_parent() is False
