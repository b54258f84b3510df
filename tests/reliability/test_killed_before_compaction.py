"""A digitize run really killed after its commits but before its compaction: `python -m jobs.digitize` in
a subprocess, its output on a real S3-compatible server behind the fault proxy, SIGKILLed at the moment
the proxy sees its first index write (the compaction), that request held until the process is dead. The
next run neither redoes nor loses a document. (tests/jobs/test_digitize_index.py has the in-process
version that stops the same run by replacing its compaction.)"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pipeline.config import StorageConfig
from pipeline.samples import sample_pdf_bytes
from pipeline.store.index import load_index, open_runs
from pipeline.store.output import Output
from pipeline.store.read import read_committed

from .fault_proxy import Fault, FaultProxy
from .s3_server import REGION, MotoS3

pytest.importorskip("rtprune.engines.hf.engine")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from pipeline_fixtures import ENGINE_OVERRIDES as ENGINE  # noqa: E402
from pipeline_fixtures import SMALL_POOLS as POOLS  # noqa: E402
from pipeline_fixtures import job_env  # noqa: E402

INDEX_WRITE = r"/out/_index/g\d"  # an index file of a new generation: the compaction's first write


def _start(tmp_path: Path, run_id: str, storage: dict) -> subprocess.Popen:
    job = tmp_path / f"{run_id}.yaml"
    job.write_text(
        yaml.safe_dump(
            {
                "input": str(tmp_path / "in"),
                "output": storage.pop("output"),
                "storage": storage,
                "engine": ENGINE,
                "pools": POOLS,
                "commit_documents": 1,
                "run_id": run_id,
            }
        )
    )
    env = job_env()
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobs.digitize",
            "--config",
            str(job),
            "--local-cpus",
            "4",
            "--local-gpus",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the job (the test's own child), then what is left of its session (its embedded Ray)."""
    proc.kill()
    proc.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_digitize_killed_at_its_compaction_then_rerun_neither_redoes_nor_loses(tmp_path):
    pages = {"a.pdf": 1, "b.pdf": 2, "c.pdf": 1}
    (tmp_path / "in").mkdir()
    for i, (name, n) in enumerate(pages.items()):
        (tmp_path / "in" / name).write_bytes(sample_pdf_bytes(n, seed=i))
    with MotoS3() as moto, FaultProxy(moto.url) as proxy:
        bucket = moto.make_bucket(f"kill-{uuid.uuid4().hex[:8]}")
        settings = {
            "endpoint_url": proxy.url,
            "key": moto.access.key,
            "secret": moto.access.secret,
            "region": REGION,
        }
        uri = f"s3://{bucket}/out"
        held = proxy.inject(Fault.stall(900), method="PUT", path=INDEX_WRITE, times=1)
        proc = _start(tmp_path, "killed", {**settings, "output": uri})
        try:
            deadline = time.monotonic() + 600
            while held.times != 0 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert held.times == 0, (proc.poll(), proc.stdout.read().decode()[-3000:] if proc.poll() else "")
        finally:
            _kill_group(proc)  # while its index write is held: that write never completes
        out = Output.open(uri, StorageConfig.model_validate(settings))
        killed = [json.loads(out.fs.cat_file(p)) for p in out.glob("_ledger/killed/*.json")]
        assert sum(len(r["documents"]) for r in killed) == 3  # every document committed ...
        assert load_index(out) is None and open_runs(out) == ["killed"]  # ... none folded into the index

        (tmp_path / "in" / "d.pdf").write_bytes(sample_pdf_bytes(2, seed=9))
        second = _start(tmp_path, "next", {**settings, "output": uri})
        log = second.communicate(timeout=900)[0].decode()
        assert second.returncode == 0, log[-3000:]
        every = read_committed(uri, StorageConfig.model_validate(settings), latest_only=False)
        state = load_index(out)
    got = Counter(
        zip(
            [u.rsplit("/", 1)[1] for u in every["source_uri"].to_pylist()],
            every["page_index"].to_pylist(),
            every["run_id"].to_pylist(),
            strict=True,
        )
    )
    expected = {(n, i, "killed"): 1 for n, c in pages.items() for i in range(c)}
    assert got == Counter({**expected, ("d.pdf", 0, "next"): 1, ("d.pdf", 1, "next"): 1})  # once each
    assert state.rows == 4 and state.watermark == {"killed": len(killed) - 1, "next": 0}
