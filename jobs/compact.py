"""Fold the ledger into the committed-documents index: python -m jobs.compact OUTPUT [--stale-after-s S]

Runs end with a compaction of their own; this is for outputs whose last run crashed before it, outputs
written before the index existed (the first compaction reads the whole ledger once), and for closing the
open markers of crashed runs (runs whose marker and newest commit are older than --stale-after-s).
Storage settings come from --config (a digitize job file: its `storage` and `plan` sections)."""

from __future__ import annotations

import sys

from jobs.cli import ConfigError, JobParser, job_main, read_yaml, validate


@job_main("compact")
def main(argv: list[str] | None = None) -> int:
    parser = JobParser(prog="python -m jobs.compact", description=__doc__.split("\n")[0])
    parser.add_argument("output", nargs="?", help="output root (default: the job file's output)")
    parser.add_argument("--config", help="digitize job YAML for storage settings")
    parser.add_argument(
        "--stale-after-s",
        type=float,
        default=3600.0,
        help="close the open markers of runs idle this long (default 3600)",
    )
    args = parser.parse_args(argv)
    from pipeline.config import PipelineConfig
    from pipeline.redact import describe_error
    from pipeline.store.compaction import compact
    from pipeline.store.index import open_runs
    from pipeline.store.output import Output

    if args.stale_after_s < 0:
        raise ConfigError("--stale-after-s: must be 0 or more")
    job = read_yaml(args.config) if args.config else {}
    output = args.output or job.get("output")
    if not output:
        raise ConfigError("give an output root or a --config with one")
    # The whole job file is checked (a typo anywhere is named), though only output, storage and plan count.
    cfg = validate(PipelineConfig, {"input": "", **job, "output": output})
    storage, plan = cfg.storage, cfg.plan
    try:
        out = Output.open(output, storage)
        state = compact(out, plan.index_bucket_rows, stale_after_s=args.stale_after_s)
    except Exception as exc:  # one redacted line: storage errors may carry signed URLs
        print(f"compact: stopped: {describe_error(exc, storage.secrets())}", file=sys.stderr)
        return 2
    if state is None:
        print("compact: nothing committed yet")
        return 0
    print(
        f"compact: index generation {state.gen}: {state.rows} documents in {state.buckets} buckets; "
        f"open runs: {', '.join(open_runs(out)) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
