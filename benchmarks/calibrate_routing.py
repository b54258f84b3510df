"""Fit the page router's thresholds on the labelled set and write them where the router reads them.

    python -m benchmarks.calibrate_routing            # fit, print, write pipeline/routing_thresholds.json
    python -m benchmarks.calibrate_routing --check    # fit and print; fail if the file differs
    python -m benchmarks.calibrate_routing --holdout-seed 1   # also judge the fit on a set from another seed

The set (pipeline/routing_set) is generated in code from a seed; features come from
pipeline/stages/page_features.py; the search is pipeline/stages/routing_fit.py (coordinate descent over one
threshold at a time, at most 1% of the pages whose layer is wrong let into the text layer, then the fewest
mistakes, ties to "rule off" or the widest margin). Prints the fitted thresholds and the confusion table
under both trust_invisible_text settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

from pipeline import routing_config
from pipeline.routing_config import RoutingThresholds
from pipeline.stages.routing_fit import confusion, confusion_table, fit_thresholds, labelled_samples

THRESHOLDS_PATH = Path(routing_config.__file__).with_name(routing_config.THRESHOLDS_FILE)


def calibration_record(seed: int, max_false_share: float) -> dict:
    """Fit on the set drawn from `seed`; the record written to the JSON (thresholds and how they came)."""
    start = time.perf_counter()
    samples = labelled_samples(seed)
    built_s = time.perf_counter() - start
    thresholds = fit_thresholds(samples, max_false_text_share=max_false_share)
    table = confusion(samples, RoutingThresholds(**thresholds))
    print(
        f"{len(samples)} pages ({built_s:.1f} s to build and measure), fit in {time.perf_counter() - start - built_s:.1f} s"
    )
    print(json.dumps(thresholds, indent=2))
    print(confusion_table(table))
    return {
        "thresholds": thresholds,
        "calibration": {
            "set": f"pipeline.routing_set.labelled_pages(seed={seed})",
            "pages": len(samples),
            "kinds": dict(Counter(s.kind for s in samples)),
            "max_false_text_share": max_false_share,
            "right": {str(t): f"{table.right(t)}/{table.total(t)}" for t in (True, False)},
            "false_text_layer": {
                str(t): f"{table.false_text_layer(t)}/{table.wrong_layer(t)}" for t in (True, False)
            },
            "pymupdf": version("pymupdf"),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-false-share", type=float, default=0.01)
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the file differs")
    parser.add_argument("--holdout-seed", type=int, default=None, help="judge the fit on this seed's set too")
    args = parser.parse_args(argv)
    record = calibration_record(args.seed, args.max_false_share)
    if args.holdout_seed is not None:
        held_out = labelled_samples(args.holdout_seed)
        print(f"held out: the set drawn from seed {args.holdout_seed}, routed with the thresholds above")
        print(confusion_table(confusion(held_out, RoutingThresholds(**record["thresholds"]))))
    if args.check:
        stored = json.loads(THRESHOLDS_PATH.read_text())["thresholds"]
        same = stored == record["thresholds"]
        print("stored thresholds match the fit" if same else "stored thresholds differ from the fit")
        return 0 if same else 1
    THRESHOLDS_PATH.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {THRESHOLDS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
