"""A run's lease in a process of its own, for tests/pipeline/test_lease.py: takes the lease of an output
(or is refused), holds it, releases it; or is killed holding it.

    python lease_holder.py '{"output": ..., "storage": {...}, "run_id": ..., "lease": {...}, "hold_s": 3,
                             "go": "/path/of/a/start/file", "released": "/path/of/a/marker"}'

Prints `ready` once imported, waits for the `go` file (so two holders race at the same moment), then
`acquired` or `refused: <message>`; after `hold_s` it releases the lease and creates the `released` file."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from pipeline.config import LeaseConfig, StorageConfig
from pipeline.store.lease import LeaseHeld, RunLease
from pipeline.store.output import Output


def main() -> None:
    args = json.loads(sys.argv[1])
    storage = StorageConfig.model_validate(args.get("storage", {}))
    lease = RunLease(
        Output.open(args["output"], storage), args["run_id"], LeaseConfig(**args["lease"]), args["output"]
    )
    print("ready", flush=True)
    while args.get("go") and not os.path.exists(args["go"]):
        time.sleep(0.01)
    try:
        with lease:
            print("acquired", flush=True)
            time.sleep(args["hold_s"])
    except LeaseHeld as exc:
        print(f"refused: {exc}", flush=True)
        return
    if args.get("released"):
        Path(args["released"]).touch()
    print("released", flush=True)


if __name__ == "__main__":
    main()
