"""The one retry helper: transient storage errors get a few attempts with backoff; others raise at once.
And the one deadline for a call that may block (with_deadline)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Errors that mean "try again later" on object stores; a missing key or bad credentials do not.
TRANSIENT: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)
PERMANENT: tuple[type[BaseException], ...] = (FileNotFoundError, PermissionError, IsADirectoryError)


def retry(
    fn: Callable[[], T],
    attempts: int = 3,
    base_delay_s: float = 0.2,
    transient: tuple[type[BaseException], ...] = TRANSIENT,
) -> T:
    """Call fn until it succeeds, at most `attempts` times, sleeping base_delay_s * 2**i between tries."""
    for i in range(attempts):
        try:
            return fn()
        except PERMANENT:
            raise
        except transient:
            if i == attempts - 1:
                raise
            time.sleep(base_delay_s * 2**i)
    raise AssertionError("unreachable")


def with_deadline(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    """fn() on a daemon thread; TimeoutError when it has not returned within timeout_s. Python cannot
    interrupt a blocked call, so a late fn is abandoned and ends on its own (when its store answers or its
    connection drops); its result is dropped. Exceptions of fn are raised here."""
    result: list[T] = []
    error: list[BaseException] = []
    done = threading.Event()

    def call() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread as it is
            error.append(exc)
        finally:
            done.set()

    threading.Thread(target=call, name="deadline", daemon=True).start()
    if not done.wait(timeout_s):
        raise TimeoutError(f"no answer within {timeout_s:g} s ({what})")
    if error:
        raise error[0]
    return result[0]
