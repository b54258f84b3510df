"""The committed-documents index through real runs: a run that dies after its commits but before its
compaction loses nothing and makes the next run redo nothing; --plan-only reports without writing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import pipeline.driver.run as run_module
from pipeline.config import PipelineConfig
from pipeline.samples import sample_pdf_bytes
from pipeline.store.index import load_index, open_runs
from pipeline.store.output import Output
from pipeline.store.read import read_committed, read_summaries

pytestmark = pytest.mark.ray
pytest.importorskip("rtprune.engines.hf.engine")

from pipeline_fixtures import ENGINE_OVERRIDES as ENGINE  # noqa: E402
from pipeline_fixtures import SMALL_POOLS as POOLS  # noqa: E402
from pipeline_fixtures import job_env  # noqa: E402


class Killed(BaseException):
    """The process dying at this point: nothing after it runs, no handler sees it."""


def _cfg(tmp_path: Path, **extra) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "input": str(tmp_path / "in"),
            "output": str(tmp_path / "out"),
            "engine": ENGINE,
            "pools": POOLS,
            "commit_documents": 1,
            **extra,
        }
    )


def _write(tmp_path: Path, name: str, pages: int, seed: int = 0) -> None:
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / name).write_bytes(sample_pdf_bytes(pages, seed=seed))


@pytest.mark.slow
@pytest.mark.ci
def test_run_killed_between_commits_and_compaction_neither_redoes_nor_loses(local_ray, tmp_path, monkeypatch):
    pages = {"a.pdf": 1, "b.pdf": 2, "c.pdf": 1}
    for i, (name, n) in enumerate(pages.items()):
        _write(tmp_path, name, n, seed=i)

    def die(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(run_module, "compact", die)
    with pytest.raises(Killed):
        run_module.run_pipeline(_cfg(tmp_path, run_id="killed"))
    monkeypatch.undo()
    out = Output.open(str(tmp_path / "out"))
    killed = [json.loads(out.fs.cat_file(p)) for p in out.glob("_ledger/killed/*.json")]
    assert sum(len(r["documents"]) for r in killed) == 3  # every document committed ...
    assert load_index(out) is None and open_runs(out) == ["killed"]  # ... none folded into the index
    assert read_summaries(str(tmp_path / "out")) == []

    _write(tmp_path, "d.pdf", 2, seed=9)
    second = run_module.run_pipeline(_cfg(tmp_path, run_id="next"))
    assert second.documents == 1  # only the new one: nothing redone
    every = read_committed(str(tmp_path / "out"), latest_only=False)  # superseded rows included
    got = Counter(zip(every["source_uri"].to_pylist(), every["page_index"].to_pylist(), strict=True))
    expected = {**pages, "d.pdf": 2}
    assert got == Counter(
        {(f"file://{tmp_path / 'in' / n}", i): 1 for n, c in expected.items() for i in range(c)}
    )
    runs = dict(zip(every["source_uri"].to_pylist(), every["run_id"].to_pylist(), strict=True))
    assert {u.rsplit("/", 1)[1]: r for u, r in runs.items()} == {
        "a.pdf": "killed",
        "b.pdf": "killed",
        "c.pdf": "killed",
        "d.pdf": "next",
    }
    state = load_index(out)
    assert state.rows == 4 and state.watermark == {"killed": len(killed) - 1, "next": 0}
    third = run_module.run_pipeline(_cfg(tmp_path, run_id="third", orphan_grace_s=0))
    assert third.documents == 0 and open_runs(out) == []  # the stale marker is closed once folded


def test_plan_only_prints_the_plan_and_writes_nothing(tmp_path):
    for i in range(3):
        _write(tmp_path, f"p{i}.pdf", 1 + i, seed=i)
    env = job_env()
    command = [
        sys.executable,
        "-m",
        "jobs.digitize",
        "--plan-only",
        f"input={tmp_path / 'in'}",
        f"output={tmp_path / 'out'}",
        "run_id=preview",
        "--local-cpus",
        "2",
        "--local-gpus",
        "1",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "plan for run preview: 3 documents listed, 0 already committed, 3 to process" in done.stdout
    assert "pages" in done.stdout and not (tmp_path / "out").exists()
