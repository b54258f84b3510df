"""The one retry helper: transient storage errors get a few attempts with backoff; others raise at once."""

from __future__ import annotations

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
