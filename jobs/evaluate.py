"""Evaluate pruning settings on a pilot sample of a corpus and recommend the cheapest one that is good enough.

    python -m jobs.evaluate --corpus s3://bucket/pdfs/ --sample-pages 100 --target-agreement 0.99
    python -m jobs.evaluate --config eval.yaml --corpus ./OmniDocBench --target-accuracy 0.9

YAML keys are the fields of rtprune.evaluation.pilot.EvaluateConfig (engine settings under `engine:`);
command-line flags override them. Writes sweep.csv, sweep.md, sweep.png and recommendation.json to
--output and prints the Markdown table. Exit status 0 with a recommendation, 3 when no setting meets the
target (so a script can stop before a large run).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jobs.cli import ConfigError, JobParser, job_main, read_yaml, validate

NO_SETTING_MEETS_TARGET = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = JobParser(prog="python -m jobs.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--config", help="YAML with EvaluateConfig fields")
    p.add_argument("--corpus", help="folder / fsspec URI of PDFs, or an OmniDocBench-format folder")
    p.add_argument("--corpus-format", choices=["auto", "pdf", "omnidocbench"])
    p.add_argument("--sample-pages", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--methods", help="comma-separated, e.g. rtprune,norm,padding")
    p.add_argument("--retentions", help="comma-separated, e.g. 0.7,0.84,0.95")
    p.add_argument("--dynamic-retentions", help="comma-separated centres for RTPrune dynamic retention")
    p.add_argument("--model", help="engine model: hub id, local checkpoint, or tiny-random-v1/v2")
    p.add_argument("--mode", help="engine resolution mode (v1): tiny, small, base, large, gundam")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--pricing", help="pricing YAML (default pipeline/cost/pricing.yaml)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target-agreement", type=float, help="minimum agreement with the unpruned model")
    target.add_argument("--target-accuracy", type=float, help="minimum accuracy against ground truth")
    p.add_argument("--output", help="output folder")
    return p.parse_args(argv)


def _floats(flag: str, text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag}: expected comma-separated numbers") from None


def config_dict(args: argparse.Namespace) -> dict[str, Any]:
    """YAML (if any) with the flags that were given laid over it."""
    data: dict[str, Any] = read_yaml(args.config) if args.config else {}
    flat = {
        "corpus": args.corpus,
        "corpus_format": args.corpus_format,
        "sample_pages": args.sample_pages,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "pricing": args.pricing,
        "output_dir": args.output,
    }
    data.update({k: v for k, v in flat.items() if v is not None})
    if args.methods:
        data["methods"] = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.retentions:
        data["retentions"] = _floats("--retentions", args.retentions)
    if args.dynamic_retentions is not None:
        data["dynamic_retentions"] = _floats("--dynamic-retentions", args.dynamic_retentions)
    engine = {"model": args.model, "mode": args.mode, "max_new_tokens": args.max_new_tokens}
    given = {k: v for k, v in engine.items() if v is not None}
    if given or "engine" in data:  # a non-mapping `engine:` is left for validation to name
        base = data.get("engine", {})
        data["engine"] = {**base, **given} if isinstance(base, dict) else base
    if args.target_agreement is not None:
        data.update(target_metric="agreement", target=args.target_agreement)
    if args.target_accuracy is not None:
        data.update(target_metric="accuracy", target=args.target_accuracy)
    return data


@job_main("evaluate")
def main(argv: list[str] | None = None) -> int:
    from pipeline.cost.pricing import load_pricing
    from rtprune.evaluation.pilot import EvaluateConfig, run_evaluation

    config = validate(EvaluateConfig, config_dict(parse_args(argv)))
    pricing = load_pricing(config.pricing)
    outcome = run_evaluation(config, gpu_usd_per_s=pricing.gpu_usd_per_s)
    with open(outcome.files["markdown"], encoding="utf-8") as f:
        print(f.read())
    print(
        f"Priced with {pricing.name} (GPU ${pricing.gpu_usd_per_s * 3600:.3f}/h). Files: "
        + ", ".join(outcome.files.values())
    )
    return 0 if outcome.recommendation.setting is not None else NO_SETTING_MEETS_TARGET


if __name__ == "__main__":
    sys.exit(main())
