"""Driver loss: SIGKILL the job process (and everything it started) after its first commits; the next run
resumes, and the committed output holds every page exactly once, none twice."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from .hostile_pdfs import healthy_pdf
from .pipeline_harness import (
    REPO_ROOT,
    config_dict,
    exactly_once_problems,
    job_command,
    job_env,
    run_job,
    short_tmpdir,
    write_config,
    write_inputs,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

DOCS, PAGES = 16, 2
KILL_AFTER_COMMITS = 1
WAIT_S = 300.0


def _commits(out: Path) -> int:
    return len(list((out / "_ledger").glob("*/*.json")))


def _kill_tree(proc: subprocess.Popen) -> list[int]:
    """SIGKILL the job and every process it started (embedded Ray: raylet, GCS, workers), by pid."""
    victims = [proc.pid]
    with contextlib.suppress(psutil.NoSuchProcess):
        victims += [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            psutil.Process(pid).send_signal(signal.SIGKILL) if psutil.pid_exists(pid) else None
    proc.wait(timeout=30)
    return victims


def test_killed_driver_resumes_with_every_page_exactly_once(tmp_path: Path) -> None:
    from pipeline.store.read import read_committed, read_summaries

    uris = write_inputs(
        tmp_path / "in", {f"doc-{i:02d}.pdf": healthy_pdf(PAGES, f"driver-{i}") for i in range(DOCS)}
    )
    out = tmp_path / "out"
    # One document per OCR call and per commit, and longer generation: many small commits, a slow run.
    pools = {"ocr_batch_size": PAGES, "ocr_sub_batch_size": PAGES}
    cfg = config_dict(
        str(tmp_path / "in"), str(out), commit_documents=1, engine={"max_new_tokens": 48}, pools=pools
    )
    ray_tmp = short_tmpdir("rd")
    cmd = job_command(write_config(tmp_path, cfg))
    job = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=job_env(ray_tmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + WAIT_S
    while _commits(out) < KILL_AFTER_COMMITS and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.poll() is None, "the job finished before it could be killed: make it longer"
    _kill_tree(job)
    first = _commits(out)
    assert KILL_AFTER_COMMITS <= first < DOCS, first

    done = run_job(cfg, tmp_path, ray_tmp=ray_tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = dict.fromkeys(uris.values(), PAGES)
    assert exactly_once_problems(read_committed(str(out)), expected) == []
    # None twice, even counting superseded rows: the resumed run redid no committed document.
    assert exactly_once_problems(read_committed(str(out), latest_only=False), expected) == []
    summaries = read_summaries(str(out))
    assert len(summaries) == 1, [
        (s.run_id, s.documents, s.pages_ok) for s in summaries
    ]  # none from the killed run
    summary = summaries[0]
    assert summary.documents == DOCS - first
