"""Digitize PDFs: python -m jobs.digitize [--config job.yaml] [a.b=value ...]

With RAY_ADDRESS set (ray job submit sets it) it joins that cluster; otherwise it starts an embedded local
Ray whose GPUs are logical resources, so the same OCR stage runs on a laptop's CPU. With no --config it
runs the embedded default: sample PDFs generated into ./out/samples, OCR'd by the tiny random model into
./out (with `output=DIR`: DIR/samples into DIR). Under Ray's job server (`ray job submit`) a relative output
is refused: the job's working directory is a temporary copy that Ray deletes. This module is the only place
that reads argv and the environment."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from jobs.cli import ConfigError, JobParser, job_main, load_typed_config
from pipeline.config import PipelineConfig
from pipeline.driver.console import ConsoleHandler, ConsoleProgress, DropMessages, add_filter_once
from pipeline.driver.local_ray import init_local_ray
from pipeline.locations import output_refusal
from pipeline.redact import escape_controls, redact_text, redact_uri
from pipeline.store import paths
from pipeline.summary import RunSummary
from rtprune.engines import check_engine

log = logging.getLogger("pipeline")

DEFAULT_OUT = Path("out")
EMBEDDED_DEFAULT: dict[str, Any] = {
    "input": str(DEFAULT_OUT / "samples"),
    "output": str(DEFAULT_OUT),
    "engine": {"model": "tiny-random-v1", "mode": "tiny", "max_new_tokens": 16},
    "pools": {"render_actors": 1, "render_num_cpus": 0.5, "ocr_num_gpus": 1.0, "ocr_batch_size": 8},
    "commit_documents": 2,
}


# Ray sets this in the environment of every job entrypoint it starts (the job's runtime_env and metadata).
JOB_SERVER_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def embedded_default(overrides: list[str]) -> dict[str, Any]:
    """The embedded default job; its sample folder follows an overridden local path output (`output=DIR`:
    samples in DIR/samples), so a job with an absolute output keeps its samples beside it and a rerun
    finds them unchanged."""
    keys = {item.partition("=")[0] for item in overrides}
    output = next((item.partition("=")[2] for item in reversed(overrides) if item.startswith("output=")), "")
    if "input" in keys or not output or "://" in output:  # samples are written with pathlib
        return EMBEDDED_DEFAULT
    return {**EMBEDDED_DEFAULT, "input": output.rstrip("/") + "/samples"}


def load_config(path: str | None, overrides: list[str]) -> PipelineConfig:
    """The digitize job's config: a job YAML (or the embedded default) plus overrides, with an engine that
    serves its model (checked here, on the driver, before Ray or any actor starts)."""
    cfg = load_typed_config(PipelineConfig, path, overrides, embedded_default(overrides))
    try:
        check_engine(cfg.engine)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return cfg


class _RedactingFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        # One line per record whatever it quotes: a name that slipped past loggable_name cannot forge
        # lines or colour the terminal.
        record.msg, record.args = escape_controls(redact_text(record.getMessage(), self._secrets)), None
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
    init_local_ray(  # a start that times out on a busy machine is tried again
        address="local",
        num_cpus=num_cpus or max(os.cpu_count() or 1, cpus_needed),
        num_gpus=num_gpus if num_gpus is not None else gpus_needed,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )


def routing_summary(s: RunSummary) -> str:
    """The routing lines of a run that routed pages ("" for one that did not): pages each way, and the
    estimated GPU seconds and $ per 1,000 pages without routing (estimates, and said to be)."""
    if not s.pages_routed:
        return ""
    line = f"routing: {s.pages_routed} pages took their own text layer (no GPU), {s.pages_ocr} went to OCR\n"
    if s.gpu_s_avoided_estimate is None or s.usd_per_1k_pages_direct_without_routing is None:
        return line + "GPU seconds avoided: unknown (no page went to OCR in this run to estimate from)\n"
    per_page = s.gpu_s_avoided_estimate / s.pages_routed
    return line + (
        f"GPU seconds avoided: about {s.gpu_s_avoided_estimate:.1f} (estimate: {s.pages_routed} routed pages "
        f"x {per_page:.3f}, this run's mean GPU seconds per OCR'd page)\n"
        f"cost with routing: ${s.usd_per_1k_pages_direct:.4f} per 1,000 pages direct; without: about "
        f"${s.usd_per_1k_pages_direct_without_routing:.4f} (estimate: plus the avoided GPU seconds at the "
        "GPU rate)\n"
    )


def human_summary(s: RunSummary, cfg: PipelineConfig) -> str:
    """The closing lines of a run. The output is named as configured (redacted, scheme and all: an s3://
    output is not a local path)."""
    output = redact_uri(cfg.output).rstrip("/")
    skipped = (
        f"skipped: {s.inputs_skipped} input entries (folders that could not be listed, entries that are "
        "not regular files, links out of the input; see the warnings above)\n"
        if s.inputs_skipped
        else ""
    )
    return (
        f"run {s.run_id}: {s.documents} documents, {s.pages_ok} pages ok, {s.pages_failed} failed "
        f"in {s.wall_s:.1f} s\n"
        f"{skipped}"
        f"cost: ${s.usd_per_1k_pages_direct:.4f} per 1,000 pages direct, "
        f"${s.usd_per_1k_pages_fully_loaded:.4f} fully loaded (utilisation {s.utilisation:.1%})\n"
        f"{routing_summary(s)}"
        f"layout: {s.pages_layout_parsed} pages read as blocks; {s.tables} tables, {s.formulas} formulas, "
        f"{s.figures} figures\n"
        f"output: {output}/{paths.part_folder_key(s.run_id)}/ "
        "(read with pipeline.store.read.read_committed), "
        f"summary: {output}/{paths.summary_key(s.run_id)}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = JobParser(prog="python -m jobs.digitize", description=__doc__.split("\n")[0])
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
    parser.add_argument(
        "--wait-for-lease",
        action="store_true",
        help="when another run holds the output, wait for it to end (lease.wait_s=.inf; a number bounds it)",
    )
    parser.add_argument("overrides", nargs="*", help="a.b=value (YAML scalar)")
    return parser.parse_args(argv)


@job_main("digitize")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    flags = (["ray_data_progress=true"] if args.ray_progress else []) + (
        ["lease.wait_s=.inf"] if args.wait_for_lease else []
    )
    cfg = load_config(args.config, args.overrides + flags)
    refusal = output_refusal("output", cfg.output, under_job_server=JOB_SERVER_ENV in os.environ)
    if refusal:
        print(f"digitize: {refusal}", file=sys.stderr)
        return 2
    handler = _setup_logging(cfg)
    samples = embedded_default(args.overrides) if args.config is None else EMBEDDED_DEFAULT
    if cfg.input == samples["input"] and not Path(cfg.input).exists():
        from pipeline.samples import write_samples

        # Only when missing: rewriting would change mtimes, and with them the content hashes the
        # ledger compares, so a second run would redo everything.
        write_samples(cfg.input, documents=6)
    from pipeline.redact import describe_error

    try:
        with _hold_lease(cfg, args.plan_only) as lease:  # before Ray: a refused run starts nothing
            _init_ray(cfg, args.local_cpus, args.local_gpus)
            from pipeline.driver.run import plan_only, run_pipeline

            handler.progress = ConsoleProgress(sys.stdout, interval_s=cfg.progress_interval_s)
            if args.plan_only:
                print(plan_only(cfg))
                return 0
            summary = run_pipeline(cfg, handler.progress, lease)
    except Exception as exc:  # fatal for the run (credentials, missing bucket or input, lost rows, lease)
        # One redacted line, no traceback: fsspec and botocore put whole URLs, signatures included, in
        # their messages, and a traceback would print them to the job's log.
        print(
            f"digitize: run {cfg.run_id} stopped: {describe_error(exc, cfg.storage.secrets())}",
            file=sys.stderr,
        )
        return 2
    print(human_summary(summary, cfg))
    return 0 if summary.pages_ok or not summary.pages_failed else 1


def _hold_lease(cfg: PipelineConfig, read_only: bool) -> contextlib.AbstractContextManager[Any]:
    """The run's lease on its output (pipeline/store/lease.py), to be entered before Ray starts; nothing
    for --plan-only (it writes nothing) or with lease.enabled off."""
    if read_only or not cfg.lease.enabled:
        return contextlib.nullcontext(None)
    from pipeline.store.lease import RunLease
    from pipeline.store.output import Output

    out = Output.open(cfg.output, cfg.storage)
    out.check_writable()
    return RunLease(out, cfg.run_id, cfg.lease, cfg.output)


if __name__ == "__main__":
    sys.exit(main())
