"""Killing the vLLM OCR actor mid-run, after pages were committed: SIGKILL to the actor's process, or to its
vLLM engine process (the actor sees EngineDeadError and exits). Either way Ray restarts the actor with a
new engine and redoes its unfinished batches; every page is committed exactly once."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
from pipeline_vllm_fixtures import (
    FIXTURE,
    cmdline,
    engine_section,
    local_ray,
    marked_processes,
    model_dir,
    pools_section,
)

from pipeline.samples import sample_pdf_bytes

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.skipif(not (FIXTURE / "model.safetensors").is_file(), reason="v1 fixture not found"),
]

DOCS, PAGES = 10, 2
WAIT_S = 1500.0  # engine start takes minutes on a loaded 2-core machine


def ocr_actor_pids() -> list[int]:
    """Live processes of the pipeline's vLLM OCR actors. Ray Data's actors share one class; the stage is
    in the process title Ray gives each one ("ray::MapWorker(MapBatches(VllmOcrStage))")."""
    import ray._private.state as state

    pids = []
    for actor in state.actors().values():
        if actor["State"] == "ALIVE" and actor.get("Pid"):
            try:
                if "VllmOcrStage" in " ".join(psutil.Process(actor["Pid"]).cmdline()):
                    pids.append(actor["Pid"])
            except psutil.Error:
                continue
    return pids


def committed_pages(out: Path) -> int:
    import json

    return sum(json.loads(p.read_text())["rows"] for p in out.glob("_ledger/*/*.json"))


# ids that no test name contains, so -k picks one scenario (`-k kill_engine_core`: "engine" alone also
# matches test_the_killed_actors_engine_processes_are_gone, i.e. both scenarios, ~2x the time).
@pytest.fixture(scope="module", params=["actor", "engine"], ids=["kill_actor", "kill_engine_core"])
def killed_run(request, tmp_path_factory):
    from pipeline.config import PipelineConfig
    from pipeline.driver.run import run_pipeline
    from pipeline.store.read import read_committed

    root = tmp_path_factory.mktemp("kill")
    (root / "in").mkdir()
    for i in range(DOCS):
        (root / "in" / f"doc-{i:02d}.pdf").write_bytes(sample_pdf_bytes(PAGES, seed=i))
    cfg = PipelineConfig.model_validate(
        {
            "input": str(root / "in"),
            "output": str(root / "out"),
            "commit_documents": 1,
            "engine": engine_section(model_dir(root), max_new_tokens=24),
            "pools": pools_section(),
        }
    )
    report: dict = {}
    with local_ray() as ray_run:
        run = threading.Thread(target=lambda: report.update(summary=run_pipeline(cfg)), daemon=True)
        run.start()
        deadline = time.monotonic() + WAIT_S
        while run.is_alive() and time.monotonic() < deadline and committed_pages(root / "out") < 2:
            time.sleep(0.2)
        (victim,) = ocr_actor_pids()
        engine_procs = psutil.Process(victim).children(recursive=True)
        report.update(
            victim=victim,
            committed_at_kill=committed_pages(root / "out"),
            engine_procs=engine_procs,
            marked=[p.pid for p in marked_processes(ray_run.marker)],
        )
        if request.param == "actor":
            os.kill(victim, signal.SIGKILL)
        else:  # vLLM's engine core: the actor's child named VLLM::EngineCore
            (core,) = [p for p in engine_procs if "EngineCore" in cmdline(p)]
            core.kill()
        while run.is_alive() and not report.get(
            "replacement"
        ):  # the restarted actor: same actor, new process
            report["replacement"] = next((p for p in ocr_actor_pids() if p != victim), None)
            time.sleep(0.2)
        run.join(WAIT_S)
        report["finished"] = not run.is_alive()
    report["leftovers"] = ray_run.leftovers
    report["table"] = read_committed(str(root / "out"), latest_only=False)
    return report


def test_the_actor_died_mid_run_and_was_replaced(killed_run):
    assert killed_run["finished"]
    assert 0 < killed_run["committed_at_kill"] < DOCS * PAGES
    assert killed_run["replacement"] not in (None, killed_run["victim"])


def test_no_page_lost_none_twice(killed_run):
    table = killed_run["table"]
    keys = list(zip(table["source_uri"].to_pylist(), table["page_index"].to_pylist(), strict=True))
    assert len(keys) == len(set(keys)) == DOCS * PAGES
    assert set(table["status"].to_pylist()) == {"ok"}, table["error"].to_pylist()
    summary = killed_run["summary"]
    assert (summary.pages_ok, summary.pages_failed) == (DOCS * PAGES, 0)


def test_the_killed_actors_engine_processes_are_gone(killed_run):
    """vLLM's engine runs in child processes of the actor; a dead actor's must not hold memory (or, on a
    GPU, the GPU memory the restarted engine needs)."""
    procs = killed_run["engine_procs"]
    assert procs  # the engine core process was found under the actor
    _, alive = psutil.wait_procs(procs, timeout=30)
    assert alive == [], [p.pid for p in alive]


def test_nothing_of_the_run_outlives_ray(killed_run):
    """The restarted actor closes its engine when Ray Data is done with it, and every vLLM process ends with
    its parent: once Ray has shut down, no process of this run is left (Ray workers, engine cores, their
    workers), re-parented or not. (The marker that finds them was on the actor and its engine processes.)"""
    assert {killed_run["victim"], *(p.pid for p in killed_run["engine_procs"])} <= set(killed_run["marked"])
    assert killed_run["leftovers"] == []
