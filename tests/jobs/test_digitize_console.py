"""What a user sees of a digitize run: the progress display and failed rows with their reason, without
Ray Data's resource dumps or the warnings nobody can act on; Ray Data's own output back on request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.samples import sample_pdf_bytes

pytestmark = pytest.mark.ray
pytest.importorskip("rtprune.engines.hf.engine")

from pipeline_fixtures import ENGINE_OVERRIDES as ENGINE  # noqa: E402
from pipeline_fixtures import PAGE_POLICY_ONE_ATTEMPT as ONE_ATTEMPT  # noqa: E402
from pipeline_fixtures import SMALL_POOLS as POOLS  # noqa: E402
from pipeline_fixtures import job_env  # noqa: E402

NOISE = [
    "logging_progress",
    "Active & requested resources",
    "Token authentication is enabled",
    "Specifying both num_cpus and num_gpus",
    "Progress bars disabled",
    "Execution plan of Dataset",
]


def _run_job(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.pdf").write_bytes(sample_pdf_bytes(2, seed=1))
    (tmp_path / "in" / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not a PDF body")
    job = {
        "input": str(tmp_path / "in"),
        "output": str(tmp_path / "out"),
        "engine": ENGINE,
        "pools": POOLS,
        "page_policy": ONE_ATTEMPT,
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    env = job_env()
    command = [
        sys.executable,
        "-m",
        "jobs.digitize",
        "--config",
        str(tmp_path / "job.yaml"),
        "--local-cpus",
        "4",
        "--local-gpus",
        "1",
        *extra,
    ]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_console_shows_progress_and_failed_rows_and_no_ray_noise(tmp_path):
    done = _run_job(tmp_path)
    console = done.stdout + done.stderr
    assert done.returncode == 0, console[-3000:]
    assert "progress: documents 2/2 | pages 3 (1 failed)" in done.stdout  # the final line of the display
    failed = [line for line in done.stdout.splitlines() if "failed: " in line and "broken.pdf" in line]
    assert len(failed) == 1 and ": render: cannot open PDF" in failed[0], console[-3000:]
    assert "committed part 000000" in done.stdout and "2 documents, 2 pages ok, 1 failed" in done.stdout
    assert [n for n in NOISE if n in console] == []


@pytest.mark.slow
def test_ray_data_progress_comes_back_with_the_flag(tmp_path):
    done = _run_job(tmp_path, "--ray-progress")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "Execution plan of Dataset" in done.stdout + done.stderr  # Ray Data's own lines are back
    assert "progress: documents 2/2" in done.stdout  # beside the run's own display
