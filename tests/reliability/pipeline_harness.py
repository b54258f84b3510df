"""Running the real pipeline from reliability tests: configs with test-sized defaults, a local Ray with
logical GPUs, the job as a subprocess, and the checks every test shares (every page exactly once)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

REPO_ROOT = Path(__file__).absolute().parents[2]  # not resolve(): keep a symlinked checkout

# Small everything: the promises under test do not depend on text length or pool size. The render
# timeout is far below what the time bombs take (docs/reliability.md) and far above a healthy document.
TEST_DEFAULTS: dict[str, Any] = {
    "engine": {"model": "tiny-random-v1", "mode": "tiny", "max_new_tokens": 8},
    "pools": {
        "render_actors": 1,
        "render_num_cpus": 0.5,
        "ocr_num_gpus": 1.0,
        "ocr_num_cpus": 0.5,
        "ocr_batch_size": 8,
        "ocr_sub_batch_size": 4,
    },
    "render": {"timeout_s": 4.0},
    # One OCR attempt per page: the tiny random model always ends at the token cap or in a loop, so the
    # default unpruned retry would double the OCR work; retries are tests/pipeline/test_page_policy.py's subject.
    "page_policy": {"greedy_retry": False},
    "commit_documents": 2,
    "node_sample_interval_s": 1.0,
}


def merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: nested sections of `extra` update those of `base`."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            merged(out[key], value)
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
            else value
        )
    return out


def config_dict(input_uri: str, output_uri: str, **sections: Any) -> dict[str, Any]:
    return merged(TEST_DEFAULTS, {"input": input_uri, "output": output_uri, **sections})


def pipeline_config(input_uri: str, output_uri: str, **sections: Any) -> Any:
    from pipeline.config import PipelineConfig

    return PipelineConfig.model_validate(config_dict(input_uri, output_uri, **sections))


@contextlib.contextmanager
def local_ray(num_cpus: int = 8, num_gpus: int = 2) -> Iterator[Any]:
    """Local Ray with logical CPUs/GPUs; workers import this checkout. The session's shared local Ray
    (tests/conftest.py) is used when it is up: it has the same resources and outlives the block."""
    import ray
    from ray.data import DataContext

    if ray.is_initialized():
        got = ray.cluster_resources()
        assert (got.get("CPU"), got.get("GPU")) == (num_cpus, num_gpus), (
            f"a local Ray with other resources: {got}"
        )
        DataContext.get_current().enable_progress_bars = False
        yield ray
        return
    from pipeline.driver.local_ray import init_local_ray

    init_local_ray(
        address="local",
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}},
    )
    DataContext.get_current().enable_progress_bars = False
    try:
        yield ray
    finally:
        ray.shutdown()


def write_inputs(folder: Path, documents: Mapping[str, bytes]) -> dict[str, str]:
    """name -> file URI for each document written under folder."""
    folder.mkdir(parents=True, exist_ok=True)
    uris = {}
    for name, data in documents.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        uris[name] = "file://" + str(path)
    return uris


def job_env(ray_tmp: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)  # always the job's own embedded Ray
    if ray_tmp is not None:
        env["RAY_TMPDIR"] = str(ray_tmp)  # the job's Ray session logs land here, where tests can read them
    return env


def job_command(config_path: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jobs.digitize",
        "--config",
        str(config_path),
        "--local-cpus",
        "8",
        "--local-gpus",
        "2",
        *overrides,
    ]


def write_config(folder: Path, cfg: Mapping[str, Any]) -> Path:
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(dict(cfg)))
    return path


def run_job(
    cfg: Mapping[str, Any],
    folder: Path,
    timeout_s: float = 240,
    ray_tmp: Path | None = None,
    overrides: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """python -m jobs.digitize in a subprocess (its own Ray); never raises for the job's exit code."""
    cmd = job_command(write_config(folder, cfg), *overrides)
    return subprocess.run(
        cmd, cwd=REPO_ROOT, env=job_env(ray_tmp), capture_output=True, text=True, timeout=timeout_s
    )


def short_tmpdir(prefix: str) -> Path:
    """Ray's socket paths must stay under ~107 bytes: pytest's tmp_path is too deep for RAY_TMPDIR."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def rows_by_doc(table: pa.Table) -> dict[str, list[dict[str, Any]]]:
    cols = [
        "source_uri",
        "page_index",
        "page_count",
        "status",
        "error_stage",
        "error",
        "finish_reason",
        "output_tokens",
        "text",
    ]
    out: dict[str, list[dict[str, Any]]] = {}
    for row in table.select(cols).to_pylist():
        out.setdefault(row["source_uri"], []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: r["page_index"])
    return out


def exactly_once_problems(table: pa.Table, expected_pages: Mapping[str, int | None]) -> list[str]:
    """What is wrong with `table` as "every page of every listed document exactly once".

    expected_pages: source_uri -> page count, or None when the page count is unknowable (the document
    cannot be opened): then exactly one row. Any document may legitimately come out as one
    document-level error row (page_index -1) instead of its pages; whether that is the right outcome
    is for the caller to check, this only counts.
    """
    problems = []
    found = rows_by_doc(table)
    for uri in sorted(set(found) - set(expected_pages)):
        problems.append(f"unexpected document in output: {uri!r}")
    for uri, pages in expected_pages.items():
        rows = found.get(uri, [])
        indices = Counter(r["page_index"] for r in rows)
        if not rows:
            problems.append(f"missing document: {uri!r}")
        elif indices.get(-1):
            if len(rows) != 1:
                problems.append(f"{uri!r}: a document error row plus {len(rows) - 1} other rows")
        elif pages is None and len(rows) != 1:
            problems.append(f"{uri!r}: {len(rows)} rows for a document that cannot be opened")
        elif pages is not None and sorted(indices.elements()) != list(range(pages)):
            dupes = sorted(i for i, n in indices.items() if n > 1)
            problems.append(
                f"{uri!r}: pages {sorted(indices.elements())[:10]}... (want {pages}); duplicated {dupes}"
            )
    return problems
