"""Starting a local Ray on a busy machine: Ray waits a fixed time for its own raylet to register
(ray/_private/node.py, not configurable), and with the machine's cores taken by other work that wait can
run out before anything has gone wrong. A start that times out that way is retried, after a shutdown that
clears what it left; any other failure raises at once. The digitize job's embedded cluster starts here,
and so do the tests' local clusters."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = "timed out during startup"  # Ray's own message for the raylet wait above
ATTEMPTS = 5


def init_local_ray(**kwargs: Any) -> Any:
    """ray.init(**kwargs), retried when Ray's node start times out; returns the ray module."""
    import ray

    for attempt in range(1, ATTEMPTS + 1):
        try:
            ray.init(**kwargs)
            return ray
        except Exception as exc:  # Ray raises a bare Exception for it
            ray.shutdown()
            if STARTUP_TIMEOUT not in str(exc) or attempt == ATTEMPTS:
                raise
            log.warning(
                "Ray's node start timed out (a busy machine); starting again (%d of %d)",
                attempt + 1,
                ATTEMPTS,
            )
    raise AssertionError("unreachable")
