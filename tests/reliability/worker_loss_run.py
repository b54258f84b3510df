"""Worker loss on a multi-node Ray cluster on one machine: run in its own process (a Cluster must not share a
process with another local Ray). Prints one JSON line with what happened; test_worker_loss.py judges it.

    python -m tests.reliability.worker_loss_run INPUT_DIR OUTPUT_DIR
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.reliability.pipeline_harness import REPO_ROOT, pipeline_config

WAIT_S = 300.0
ROLES = {"RenderStage": "render", "OcrStage": "ocr"}


def pipeline_actors() -> dict[str, set[str]]:
    """node_id -> roles ({"render", "ocr"}) of the pipeline's live actors on that node. Ray Data's actors
    all share one class, so the role is read from the process title Ray gives each actor
    ("ray::MapWorker(MapBatches(OcrStage))"); the state API would need the dashboard."""
    import psutil
    import ray._private.state as state

    nodes: dict[str, set[str]] = {}
    for actor in state.actors().values():
        if actor["State"] != "ALIVE" or not actor.get("Pid"):
            continue
        try:
            title = " ".join(psutil.Process(actor["Pid"]).cmdline())
        except psutil.Error:  # died between the listing and the look
            continue
        for stage, role in ROLES.items():
            if stage in title:
                nodes.setdefault(actor["Address"]["NodeID"], set()).add(role)
    return nodes


def wait_for_victim(out: Path, run: threading.Thread, seen: list[dict[str, list[str]]]) -> str | None:
    """A worker node holding both a render and an OCR actor. No commit is awaited: rendering can finish
    before the first commit, and by then no node holds both. `seen` keeps the placements observed."""
    deadline = time.monotonic() + WAIT_S
    while run.is_alive() and time.monotonic() < deadline:
        placement = pipeline_actors()
        seen.append({node[:8]: sorted(roles) for node, roles in placement.items()})
        for node_id, roles in placement.items():
            if roles == {"render", "ocr"}:
                return node_id
        time.sleep(0.2)
    return None


def main(input_dir: str, output_dir: str) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    # The head gets no CPUs or GPUs, so every actor lands on a worker node that can be removed.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 0})
    workers = [cluster.add_node(num_cpus=3, num_gpus=1) for _ in range(2)]
    ray.init(address=cluster.address, runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
    from pipeline.driver.run import run_pipeline

    cfg = pipeline_config(
        input_dir,
        output_dir,
        commit_documents=1,
        engine={"max_new_tokens": 48},
        pools={"render_actors": 2, "ocr_batch_size": 2, "ocr_sub_batch_size": 2},
    )
    result: dict[str, Any] = {}
    run = threading.Thread(target=lambda: result.update(summary=run_pipeline(cfg).model_dump()), daemon=True)
    run.start()
    seen: list[dict[str, list[str]]] = []
    victim = wait_for_victim(Path(output_dir), run, seen)
    commits_at_kill = len(list(Path(output_dir, "_ledger").glob("*/*.json")))
    killed = False
    for node in workers:
        if node.node_id == victim:
            cluster.remove_node(node, allow_graceful=False)
            killed = True
    run.join(WAIT_S)
    report = {
        "victim": victim,
        "killed": killed,
        "commits_at_kill": commits_at_kill,
        "placements": seen[-3:],
        "finished": not run.is_alive(),
        "summary": result.get("summary"),
    }
    ray.shutdown()
    cluster.shutdown()
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2]), default=str))
