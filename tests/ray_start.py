"""Starting the tests' local Ray on a busy machine: Ray waits a fixed 30 s for its own raylet to register
(ray/_private/node.py, not configurable), and with the machine's cores taken by other work that wait runs
out before the test has done anything. A start that times out that way is retried, after a shutdown that
clears what it left; any other failure raises at once."""

from __future__ import annotations

from typing import Any

STARTUP_TIMEOUT = "timed out during startup"  # Ray's own message for the raylet wait above
ATTEMPTS = 5


def init_local_ray(**kwargs: Any) -> Any:
    """ray.init(**kwargs), retried when Ray's node start times out; returns the ray module."""
    import ray

    for attempt in range(ATTEMPTS):
        try:
            ray.init(**kwargs)
            return ray
        except Exception as exc:  # Ray raises a bare Exception for it
            ray.shutdown()
            if STARTUP_TIMEOUT not in str(exc) or attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
