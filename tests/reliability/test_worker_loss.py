"""Worker loss: a worker node holding render and OCR actors is removed mid-run from a 3-node Ray cluster on
this machine while both stages run; the run completes and every page is in the output exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .hostile_pdfs import healthy_pdf
from .pipeline_harness import REPO_ROOT, exactly_once_problems, job_env, short_tmpdir, write_inputs

pytestmark = [pytest.mark.ray, pytest.mark.slow]

DOCS, PAGES = 24, 2


def test_run_survives_losing_a_worker_node(tmp_path: Path) -> None:
    from pipeline.store.read import read_committed

    uris = write_inputs(
        tmp_path / "in", {f"doc-{i:02d}.pdf": healthy_pdf(PAGES, f"node-{i}") for i in range(DOCS)}
    )
    cmd = [
        sys.executable,
        "-m",
        "tests.reliability.worker_loss_run",
        str(tmp_path / "in"),
        str(tmp_path / "out"),
    ]
    done = subprocess.run(
        cmd, cwd=REPO_ROOT, env=job_env(short_tmpdir("rw")), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["killed"], f"no node held both a render and an OCR actor: {report}"
    assert report["commits_at_kill"] < DOCS, report  # the node died mid-run, not after it
    assert report["finished"] and report["summary"] is not None, report
    table = read_committed(str(tmp_path / "out"))
    assert exactly_once_problems(table, dict.fromkeys(uris.values(), PAGES)) == []
    assert set(table.column("status").to_pylist()) == {"ok"}, table.column("error").to_pylist()
