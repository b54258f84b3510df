"""Issue 5 job behaviour: incremental runs over the ledger, and a run killed midway then rerun."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pyarrow.compute as pc
import pytest
import yaml

from pipeline.config import PipelineConfig
from pipeline.samples import sample_pdf_bytes
from pipeline.store.read import read_committed, read_summaries

pytestmark = pytest.mark.ray
pytest.importorskip("rtprune.engines.hf.engine")

ROOT = Path(__file__).absolute().parents[2]  # the checkout under test (symlinks kept)
from pipeline_fixtures import ENGINE_OVERRIDES as ENGINE  # noqa: E402
from pipeline_fixtures import PAGE_POLICY_ONE_ATTEMPT as ONE_ATTEMPT  # noqa: E402
from pipeline_fixtures import SMALL_POOLS as POOLS  # noqa: E402
from pipeline_fixtures import job_env  # noqa: E402


def _cfg(tmp_path: Path, **extra) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "input": str(tmp_path / "in"),
            "output": str(tmp_path / "out"),
            "engine": ENGINE,
            "pools": POOLS,
            "page_policy": ONE_ATTEMPT,
            **extra,
        }
    )


def _write(tmp_path: Path, name: str, pages: int, seed: int = 0) -> None:
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / name).write_bytes(sample_pdf_bytes(pages, seed=seed))


def _pages(table) -> Counter:
    return Counter(zip(table["source_uri"].to_pylist(), table["page_index"].to_pylist(), strict=True))


@pytest.mark.slow
@pytest.mark.ci
def test_second_run_processes_only_new_and_changed_documents(local_ray, tmp_path):
    from pipeline.driver.run import run_pipeline

    _write(tmp_path, "a.pdf", 1)
    _write(tmp_path, "b.pdf", 2)
    first = run_pipeline(_cfg(tmp_path, run_id="run-1"))
    assert (first.documents, first.pages_ok) == (2, 3)
    _write(tmp_path, "b.pdf", 3, seed=5)  # changed: new content, one more page
    _write(tmp_path, "c.pdf", 1)  # new
    second = run_pipeline(_cfg(tmp_path, run_id="run-2"))
    assert (second.documents, second.pages_ok) == (2, 4)
    third = run_pipeline(_cfg(tmp_path, run_id="run-3"))  # nothing new: nothing processed
    assert (third.documents, third.pages_ok, third.pages_failed) == (0, 0, 0)
    table = read_committed(str(tmp_path / "out"))
    by_doc = {
        uri.rsplit("/", 1)[1]: run
        for uri, run in zip(table["source_uri"].to_pylist(), table["run_id"].to_pylist(), strict=True)
    }
    assert by_doc == {"a.pdf": "run-1", "b.pdf": "run-2", "c.pdf": "run-2"}
    assert set(_pages(table).values()) == {1} and table.num_rows == 1 + 3 + 1
    assert [s.run_id for s in read_summaries(str(tmp_path / "out"))] == ["run-1", "run-2", "run-3"]


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the job's session: the driver and the embedded Ray it started (all ours, by session id)."""
    members = [p for p in psutil.process_iter(["pid"]) if _session(p) == proc.pid]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for p in members:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    proc.wait(timeout=30)


def _session(p: psutil.Process) -> int:
    try:
        return os.getsid(p.pid)
    except (ProcessLookupError, PermissionError):
        return -1


@pytest.mark.slow
@pytest.mark.ci
def test_run_killed_after_first_commit_then_rerun_has_every_page_once(local_ray, tmp_path):
    from pipeline.driver.run import run_pipeline

    pages = {f"d{i:02d}.pdf": 1 + i % 2 for i in range(6)}
    for i, (name, n) in enumerate(pages.items()):
        _write(tmp_path, name, n, seed=i)
    job = {
        "input": str(tmp_path / "in"),
        "output": str(tmp_path / "out"),
        "engine": ENGINE,
        "pools": POOLS,
        "page_policy": ONE_ATTEMPT,
        "commit_documents": 1,
        "run_id": "crashed",
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.digitize", "--config", str(tmp_path / "job.yaml")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ledger = tmp_path / "out" / "_ledger" / "crashed"
    # Until the job's first commit, or its end (a failure shows its output). The deadline only guards
    # against a hang: on a busy machine Ray's start and the model load alone took over 240 s.
    deadline = time.monotonic() + 900
    while not (ledger.exists() and any(ledger.glob("*.json"))):
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no commit within 900 s"
        time.sleep(0.2)
    _kill_tree(proc)
    output = proc.stdout.read().decode()
    assert "committed part 000000" in output  # progress is visible while it runs
    committed_before = len(list(ledger.glob("*.json")))
    assert 1 <= committed_before < len(pages)  # killed midway, not after the end
    summary = run_pipeline(_cfg(tmp_path, run_id="rerun"))
    table = read_committed(str(tmp_path / "out"))
    expected = Counter({(str(tmp_path / "in" / n), i): 1 for n, c in pages.items() for i in range(c)})
    got = Counter({(uri.removeprefix("file://"), i): c for (uri, i), c in _pages(table).items()})
    assert got == expected  # every page exactly once
    assert summary.documents == len(pages) - sum(
        len(r) for r in [pc.unique(table.filter(pc.equal(table["run_id"], "crashed"))["doc_id"]).to_pylist()]
    )


@pytest.mark.slow
def test_embedded_default_job_runs_from_an_empty_folder(tmp_path):
    """The README's one command: no config, no cluster; samples are generated and OCR'd into ./out."""
    env = job_env()
    command = [
        sys.executable,
        "-m",
        "jobs.digitize",
        f"engine.model={ENGINE['model']}",
        "engine.max_new_tokens=4",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "12 pages ok, 0 failed" in done.stdout and "per 1,000 pages direct" in done.stdout
    assert "committed part 000000" in done.stdout
    table = read_committed(str(tmp_path / "out"))
    assert table.num_rows == 12 and set(table["status"].to_pylist()) == {"ok"}
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "0 documents, 0 pages ok" in again.stdout  # nothing new: nothing redone
    assert read_committed(str(tmp_path / "out")).num_rows == 12


def test_a_fatal_error_ends_the_job_with_one_redacted_line(tmp_path):
    """An unreachable pre-signed input stops the run; its signature must not reach the job's output."""
    signature = "f00dfeedsignature" + os.urandom(4).hex()
    url = f"https://127.0.0.1:9/in/doc.pdf?X-Amz-Credential=AKIDEXAMPLE&X-Amz-Signature={signature}"
    env = job_env()
    command = [
        sys.executable,
        "-m",
        "jobs.digitize",
        f"input={url}",
        f"output={tmp_path / 'out'}",
        f"engine.model={ENGINE['model']}",
        "--local-cpus",
        "2",
        "--local-gpus",
        "1",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert signature not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "stopped" in done.stderr and "127.0.0.1:9" in done.stderr  # says what failed
