"""Digitize PDFs: python -m jobs.digitize [--config job.yaml] [a.b=value ...]

With RAY_ADDRESS set (ray job submit sets it) it joins that cluster; otherwise it starts an embedded local
Ray whose GPUs are logical resources, so the same OCR stage runs on a laptop's CPU. With no --config it
runs the embedded default: sample PDFs generated into ./out/samples, OCR'd by the tiny random model into
./out. This module is the only place that reads argv and the environment."""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.config import PipelineConfig
from pipeline.driver.console import ConsoleHandler, ConsoleProgress, DropMessages, add_filter_once
from pipeline.redact import redact_text
from pipeline.store import paths
from pipeline.summary import RunSummary

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("pipeline")

DEFAULT_OUT = Path("out")
EMBEDDED_DEFAULT: dict[str, Any] = {
    "input": str(DEFAULT_OUT / "samples"),
    "output": str(DEFAULT_OUT),
    "engine": {"model": "tiny-random-v1", "mode": "tiny", "max_new_tokens": 16},
    "pools": {"render_actors": 1, "render_num_cpus": 0.5, "ocr_num_gpus": 1.0, "ocr_batch_size": 8},
    "commit_documents": 2,
}


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`a.b=value` pairs onto a nested dict; values are YAML scalars (8 -> int, true -> bool)."""
    data = yaml.safe_load(yaml.safe_dump(data)) or {}  # deep copy
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item.split('=')[0]!r} is not of the form key=value")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {key!r}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(raw) if raw else ""
    return data


def load_typed_config(model: type[M], path: str | None, overrides: list[str], default: dict[str, Any]) -> M:
    """YAML file (or `default`) plus overrides -> a validated `model`. Unknown keys are named."""
    data = yaml.safe_load(Path(path).read_text()) if path else default
    data = apply_overrides(data or {}, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"invalid config: {problems}") from None  # the values may hold secrets: not shown


def load_config(path: str | None, overrides: list[str]) -> PipelineConfig:
    """The digitize job's config: a job YAML (or the embedded default) plus overrides."""
    return load_typed_config(PipelineConfig, path, overrides, EMBEDDED_DEFAULT)


class _RedactingFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_text(record.getMessage(), self._secrets), None
        return True


def _setup_logging(cfg: PipelineConfig) -> ConsoleHandler:
    handler = ConsoleHandler(sys.stdout)  # writes above the progress line while one is shown
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s", "%H:%M:%S"))
    handler.addFilter(_RedactingFilter(cfg.storage.secrets()))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    # ray.init warns on every start of a local cluster that token authentication is on and how to turn it
    # off. The embedded cluster lives only as long as this process, so there is nothing to act on; the
    # warning that it is *off* (a cluster open to anyone on the network) is a different message and stays.
    add_filter_once(
        "ray._private.authentication.authentication_token_setup",
        DropMessages("Token authentication is enabled for this Ray cluster"),
    )
    return handler


def _init_ray(cfg: PipelineConfig, num_cpus: int | None, num_gpus: int | None) -> None:
    import ray

    if os.environ.get("RAY_ADDRESS"):
        ray.init(logging_level=logging.WARNING)
        return
    p = cfg.pools
    # Without NVIDIA devices the GPUs are logical: exactly what the OCR pool asks for, engine on CPU.
    gpus_needed = None if shutil.which("nvidia-smi") else math.ceil(p.ocr_max_actors * p.ocr_num_gpus)
    cpus_needed = math.ceil(p.render_actors * p.render_num_cpus + p.ocr_max_actors * p.ocr_num_cpus) + 1
    ray.init(
        address="local",
        num_cpus=num_cpus or max(os.cpu_count() or 1, cpus_needed),
        num_gpus=num_gpus if num_gpus is not None else gpus_needed,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )


def human_summary(s: RunSummary, output: str) -> str:
    return (
        f"run {s.run_id}: {s.documents} documents, {s.pages_ok} pages ok, {s.pages_failed} failed "
        f"in {s.wall_s:.1f} s\n"
        f"cost: ${s.usd_per_1k_pages_direct:.4f} per 1,000 pages direct, "
        f"${s.usd_per_1k_pages_fully_loaded:.4f} fully loaded (utilisation {s.utilisation:.1%})\n"
        f"layout: {s.pages_layout_parsed} pages read as blocks; {s.tables} tables, {s.formulas} formulas, "
        f"{s.figures} figures\n"
        f"output: {output}/{paths.part_folder_key(s.run_id)}/ "
        "(read with pipeline.store.read.read_committed), "
        f"summary: {output}/{paths.summary_key(s.run_id)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.digitize", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="job YAML (default: the embedded sample job)")
    parser.add_argument("--local-cpus", type=int, help="logical CPUs of the embedded Ray")
    parser.add_argument("--local-gpus", type=int, help="logical GPUs of the embedded Ray")
    parser.add_argument(
        "--ray-progress",
        action="store_true",
        help="also show Ray Data's own progress and resource dumps (ray_data_progress=true)",
    )
    parser.add_argument(
        "--plan-only",
        action="store_true",
        help="print what a run would process (documents, bytes, estimated pages) and exit",
    )
    parser.add_argument("overrides", nargs="*", help="a.b=value (YAML scalar)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides + (["ray_data_progress=true"] if args.ray_progress else []))
    handler = _setup_logging(cfg)
    if cfg.input == EMBEDDED_DEFAULT["input"] and not Path(cfg.input).exists():
        from pipeline.samples import write_samples

        # Only when missing: rewriting would change mtimes, and with them the content hashes the
        # ledger compares, so a second run would redo everything.
        write_samples(cfg.input, documents=6)
    _init_ray(cfg, args.local_cpus, args.local_gpus)
    from pipeline.driver.run import plan_only, run_pipeline
    from pipeline.redact import describe_error
    from pipeline.store.output import Output

    handler.progress = ConsoleProgress(sys.stdout, interval_s=cfg.progress_interval_s)
    try:
        if args.plan_only:
            print(plan_only(cfg))
            return 0
        summary = run_pipeline(cfg, handler.progress)
    except Exception as exc:  # fatal for the run (credentials, missing bucket or input, lost rows)
        # One redacted line, no traceback: fsspec and botocore put whole URLs, signatures included, in
        # their messages, and a traceback would print them to the job's log.
        print(
            f"digitize: run {cfg.run_id} stopped: {describe_error(exc, cfg.storage.secrets())}",
            file=sys.stderr,
        )
        return 2
    print(human_summary(summary, Output.open(cfg.output, cfg.storage).root))
    return 0 if summary.pages_ok or not summary.pages_failed else 1


if __name__ == "__main__":
    sys.exit(main())
