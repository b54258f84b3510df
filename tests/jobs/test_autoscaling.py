"""Ray's real autoscaler with fake nodes (ray.cluster_utils.AutoscalingCluster) on one machine: GPU workers
start at zero, the autoscaler adds one when a GPU actor stage asks for it (a synthetic stage doing real CPU
work, and the digitize pipeline itself with the tiny random model), the run completes, and the GPU node goes
away after its idle timeout.

The scenario runs in its own Python process (this file run as a script) because it starts and stops a whole
Ray cluster; pytest only reads the JSON it reports. AutoscalingCluster.start()/shutdown() run
`ray stop --force`, which kills every Ray process on the machine, other people's included. The subclass
below starts the head on its own free ports and temp dir instead and, on shutdown, stops only the
processes of that cluster (found by its temp dir, plus their children).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from pipeline.cost.pricing import load_pricing
from pipeline.cost.report import build_tables

ROOT = Path(__file__).resolve().parents[2]
GPU_NODE_TYPE, CPU_NODE_TYPE = "ray.worker.gpu", "ray.worker.cpu"
IDLE_TIMEOUT_S = 15
ROWS, HASH_ROUNDS = 48, 20_000  # a few seconds of real CPU work in the "GPU" actor


# ---------------------------------------------------------------- the test (runs the scenario, reads JSON)


def _run_scenario(tmp_path: Path, workload: str) -> dict:
    out = tmp_path / "scenario.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        # The autoscaler and AutoscalingCluster shell out to the `ray` CLI of this interpreter.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        [sys.executable, __file__, "--out", str(out), "--workload", workload],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    r = json.loads(out.read_text())
    print(json.dumps(r["timings_s"], indent=1))
    assert r["gpus_before_run"] == 0 and r["gpu_nodes_before_run"] == 0
    assert r["gpu_nodes_peak"] >= 1 and r["timings_s"]["gpu_node_up_after_submit"] > 0
    assert r["gpu_nodes_after_idle"] == 0 and r["cpu_nodes_after_idle"] >= 1  # CPU min_workers stays
    assert r["timings_s"]["gpu_node_released_after_run"] >= IDLE_TIMEOUT_S * 0.8
    # Isolation: our cluster is gone, and a process `ray stop --force` would have killed is not.
    assert r["our_processes_running"] >= 4 and r["leftover_processes"] == []  # head + CPU worker, then none
    assert r["decoy_seen_as_foreign"] and r["decoy_alive_after"] and r["foreign_processes_signalled"] == []
    return r


@pytest.mark.slow
@pytest.mark.ray
def test_gpu_workers_scale_from_zero_for_a_gpu_actor_stage_and_back(tmp_path):
    r = _run_scenario(tmp_path, "synthetic")
    assert r["rows_out"] == ROWS and r["rows_correct"] == ROWS
    # Every batch of the GPU stage ran on a node the autoscaler added for it, holding a GPU.
    assert set(r["ocr_node_ids"]) <= set(r["gpu_node_ids"]) and r["ocr_gpu_ids_seen"]


@pytest.mark.slow
@pytest.mark.ray
def test_the_digitize_pipeline_scales_gpu_workers_from_zero_and_back(tmp_path):
    r = _run_scenario(tmp_path, "pipeline")
    # Every page of the generated PDFs committed as text, by OCR actors that only a GPU node could host.
    assert r["pages_ok"] == r["pages_expected"] > 0 and r["pages_failed"] == 0
    assert r["rows_committed"] == r["pages_expected"]
    # The run's summary priced the GPU node the autoscaler added, and the cost report agrees with it.
    assert r["gpu_node_seconds"] > 0
    assert r["report_loaded_usd"] == pytest.approx(r["summary_loaded_usd"])


# ---------------------------------------------------------------- the scenario (its own process)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def cluster_config(gcs_address: str) -> dict:
    """The autoscaler config AutoscalingCluster would build from fake_multi_node/example.yaml, which the
    ray wheel does not ship. gcs_address: fake workers otherwise join port 6379, maybe someone else's."""
    worker_types = {
        # Like infra/cluster/aws.yaml, scaled down: CPU render workers (one always up), GPU workers from 0.
        CPU_NODE_TYPE: {
            "resources": {"CPU": 2, "object_store_memory": 150 * 2**20},
            "node_config": {},
            "min_workers": 1,
            "max_workers": 1,
        },
        GPU_NODE_TYPE: {
            "resources": {"CPU": 1, "GPU": 1, "object_store_memory": 150 * 2**20},
            "node_config": {},
            "min_workers": 0,
            "max_workers": 2,
        },
    }
    return {
        "cluster_name": "rtprune-autoscaling-test",
        "max_workers": 3,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": IDLE_TIMEOUT_S / 60,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": gcs_address,
        },
        "auth": {"ssh_user": "ubuntu"},
        "docker": {},
        "head_node_type": "ray.head.default",
        "available_node_types": worker_types,
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def _make_cluster_class():
    from ray.cluster_utils import AutoscalingCluster

    class IsolatedAutoscalingCluster(AutoscalingCluster):
        """AutoscalingCluster that leaves other Ray instances on the machine alone."""

        def __init__(self, temp_dir: str, port: int, **kw) -> None:
            import ray._private.services

            self.temp_dir, self.port, self.signalled = temp_dir, port, []
            self.gcs_address = f"{ray._private.services.get_node_ip_address()}:{port}"
            super().__init__(**kw)

        def _generate_config(self, head_resources, worker_node_types, autoscaler_v2=False, **kw):
            config = cluster_config(self.gcs_address)
            config["available_node_types"]["ray.head.default"] = {
                "resources": dict(head_resources),
                "node_config": {},
                "max_workers": 0,
            }
            return config

        def start(self, _system_config=None, override_env=None) -> None:
            # Same as the base class minus `ray stop --force`, plus own ports and temp dir.
            config_path = Path(self.temp_dir) / "autoscaling.json"
            config_path.write_text(json.dumps(self._config))
            ports = {
                f"--{p}": str(_free_port())
                for p in (
                    "dashboard-port",
                    "node-manager-port",
                    "object-manager-port",
                    "metrics-export-port",
                    "dashboard-agent-listen-port",
                    "dashboard-agent-grpc-port",
                    "runtime-env-agent-port",
                )
            }
            cmd = [
                str(Path(sys.executable).parent / "ray"),
                "start",
                "--head",
                f"--port={self.port}",
                f"--temp-dir={self.temp_dir}",
                f"--autoscaling-config={config_path}",
                "--disable-usage-stats",
                f"--num-cpus={self._head_resources['CPU']}",
                "--num-gpus=0",
                f"--object-store-memory={150 * 2**20}",
                *(f"{k}={v}" for k, v in ports.items()),
            ]
            env = {**os.environ, "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_FAKE_CLUSTER": "1"}
            subprocess.check_call(cmd, env=env, stdout=subprocess.DEVNULL)

        def shutdown(self) -> None:
            self.signalled = ray_processes(self.temp_dir)[0]
            stop_processes(self.signalled)

    return IsolatedAutoscalingCluster


def _hit_by_ray_stop(proc) -> bool:
    """Whether `ray stop` would kill this process: the same (keyword, by name) table it uses."""
    from ray.autoscaler._private.constants import RAY_PROCESSES

    name, cmd = proc.info["name"] or "", subprocess.list2cmdline(proc.info["cmdline"] or [])
    return any(keyword in (name if by_name else cmd) for keyword, by_name in RAY_PROCESSES)


def ray_processes(temp_dir: str) -> tuple[list[int], list[int]]:
    """(ours, foreign). Ours: processes whose command line names our temp dir, plus all their children
    (workers rename themselves to ray::... and lose the path). Foreign: what `ray stop` would also hit."""
    import psutil

    ours: set[int] = set()
    hit = set()
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        if p.pid == os.getpid():
            continue
        if _hit_by_ray_stop(p):
            hit.add(p.pid)
        if temp_dir.rstrip(os.sep) + os.sep in " ".join(p.info["cmdline"] or []):
            ours.add(p.pid)
            with contextlib.suppress(psutil.Error):
                ours.update(c.pid for c in p.children(recursive=True))
    return sorted(ours), sorted(hit - ours)


def stop_processes(pids: list[int], grace_s: float = 5.0) -> None:
    import psutil

    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            p.send_signal(signal.SIGTERM)
            procs.append(p)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=grace_s)


class NodeWatcher(threading.Thread):
    """Samples the cluster's alive nodes twice a second: when GPU nodes came and went."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, list[str], list[str]]] = []  # (t, gpu node ids, cpu worker ids)
        self.stop_event = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        import ray

        while not self.stop_event.is_set():
            gpu, cpu = [], []
            for n in ray.nodes():
                if n["Alive"] and n["Resources"].get("GPU", 0) > 0:
                    gpu.append(n["NodeID"])
                elif n["Alive"] and not n["Resources"].get("node:__internal_head__"):
                    cpu.append(n["NodeID"])
            with self.lock:
                self.samples.append((time.monotonic(), gpu, cpu))
            self.stop_event.wait(0.5)

    def latest(self) -> tuple[float, list[str], list[str]]:
        with self.lock:
            return self.samples[-1]

    def wait_for(self, predicate, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.samples and predicate(*self.latest()[1:]):
                return self.latest()[0]
            time.sleep(0.2)
        raise TimeoutError(f"cluster did not reach the expected state in {timeout_s}s: {self.latest()}")


def digest(i: int) -> str:
    h = str(i).encode()
    for _ in range(HASH_ROUNDS):
        h = hashlib.sha256(h).digest()
    return h.hex()


class OcrLikeStage:
    """Stands in for the OCR actor: holds a (logical) GPU, does real CPU work per row, says where it ran."""

    def __call__(self, batch: dict) -> dict:
        import ray

        ctx = ray.get_runtime_context()
        n = len(batch["id"])
        return {
            "id": batch["id"],
            "digest": [digest(int(i)) for i in batch["id"]],
            "node_id": [ctx.get_node_id()] * n,
            "gpu_ids": [",".join(map(str, ray.get_gpu_ids()))] * n,
        }


def render_like(batch: dict) -> dict:
    return {"id": batch["id"]}


def run_synthetic() -> dict:
    """A CPU stage, then a GPU actor stage doing real CPU work; every row is checked."""
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    ds = ray.data.range(ROWS, override_num_blocks=6).map_batches(render_like, batch_size=8, num_cpus=0.5)
    ds = ds.map_batches(
        OcrLikeStage,
        batch_size=8,
        num_gpus=1,
        num_cpus=0.5,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=1),
    )
    rows = ds.take_all()
    return {
        "rows_out": len(rows),
        "rows_correct": sum(r["digest"] == digest(int(r["id"])) for r in rows),
        "ocr_node_ids": sorted({r["node_id"] for r in rows}),
        "ocr_gpu_ids_seen": sorted({r["gpu_ids"] for r in rows if r["gpu_ids"]}),
    }


def run_digitize(work_dir: Path) -> dict:
    """The real pipeline (render actors, OCR actors with the tiny random model on a logical GPU, commit,
    run summary) on generated PDFs, then the cost report's numbers for that output."""
    from pipeline.config import PipelineConfig
    from pipeline.driver.run import run_pipeline
    from pipeline.samples import write_samples
    from pipeline.store.read import read_committed, read_summaries

    counts = write_samples(work_dir / "in", documents=4)
    cfg = PipelineConfig.model_validate(
        {
            "input": str(work_dir / "in"),
            "output": str(work_dir / "out"),
            "engine": {"model": "tiny-random-v1", "mode": "tiny", "max_new_tokens": 16},
            "pools": {
                "render_actors": 1,
                "render_num_cpus": 0.5,
                "ocr_num_gpus": 1.0,
                "ocr_num_cpus": 0.5,
                "ocr_batch_size": 8,
            },
            "commit_documents": 2,
        }
    )
    summary = run_pipeline(cfg)
    pages = read_committed(cfg.output, latest_only=False)
    total = build_tables(pages, read_summaries(cfg.output), [["run"]])[0].total
    return {
        "pages_expected": sum(counts.values()),
        "pages_ok": summary.pages_ok,
        "pages_failed": summary.pages_failed,
        "rows_committed": pages.num_rows,
        "node_seconds": summary.node_seconds,
        "gpu_node_seconds": summary.node_seconds.get(load_pricing().gpu_node_type, 0.0),
        "summary_loaded_usd": summary.cost_fully_loaded_usd,
        "report_loaded_usd": total.cost_fully_loaded_usd,
    }


def _start_decoy() -> subprocess.Popen:
    """A process that `ray stop --force` would kill (its command line names monitor.py), standing in for
    someone else's Ray on this machine: the scenario must leave it running."""
    decoy = Path(tempfile.gettempdir()) / f"decoy-{os.getpid()}" / "monitor.py"  # outside temp_dir
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)", str(decoy)])
    deadline = time.monotonic() + 10
    while str(decoy) not in psutil.Process(proc.pid).cmdline() and time.monotonic() < deadline:
        time.sleep(0.05)  # until exec: before it the child still shows our command line
    return proc


def _use_own_auth_token(temp_dir: str) -> None:
    """Ray 2.60 turns token auth on when ~/.ray/auth_token exists, a file anyone on a shared machine may
    create or replace mid-run. The head, the fake workers the autoscaler starts (they inherit its
    environment) and this driver all use a token of their own instead. Must run before `import ray`:
    Ray reads RAY_AUTH_MODE into its config once, at import."""
    token = Path(temp_dir) / "auth_token"
    token.write_text(secrets.token_hex(32))
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})


def run_scenario(out: Path, workload: str) -> None:
    temp_dir = tempfile.mkdtemp(prefix="rtpas", dir="/tmp")  # short: Unix socket paths are capped
    _use_own_auth_token(temp_dir)
    import ray

    decoy = _start_decoy()
    _, foreign_before = ray_processes(temp_dir)
    cluster = _make_cluster_class()(temp_dir, _free_port(), head_resources={"CPU": 1}, worker_node_types={})
    t0 = time.monotonic()
    cluster.start()
    result: dict = {
        "timings_s": {},
        "decoy_seen_as_foreign": decoy.pid in foreign_before,
        "foreign_ray_processes": len(foreign_before) - 1,
    }
    try:
        ray.init(address=cluster.gcs_address, logging_level="WARNING", log_to_driver=False)
        watcher = NodeWatcher()
        watcher.start()
        watcher.wait_for(lambda gpu, cpu: len(cpu) >= 1, timeout_s=120)  # CPU min_workers came up
        result["timings_s"]["cluster_ready"] = time.monotonic() - t0
        result["our_processes_running"] = len(ray_processes(temp_dir)[0])
        result["gpus_before_run"] = ray.cluster_resources().get("GPU", 0)
        result["gpu_nodes_before_run"] = len(watcher.latest()[1])
        t_run = time.monotonic()
        result.update(run_synthetic() if workload == "synthetic" else run_digitize(Path(temp_dir) / "work"))
        t_done = time.monotonic()
        t_released = watcher.wait_for(lambda gpu, cpu: not gpu, timeout_s=IDLE_TIMEOUT_S + 120)
        watcher.stop_event.set()
        watcher.join()
        summary = _summarise(watcher.samples, t_run, t_done, t_released)
        result["timings_s"].update(summary.pop("timings_s"))
        result.update(summary)
    finally:
        ray.shutdown()
        cluster.shutdown()
        result["leftover_processes"] = ray_processes(temp_dir)[0]
        # Foreign processes may end on their own meanwhile; what matters is that we signalled none.
        result["foreign_processes_signalled"] = sorted(set(cluster.signalled) & set(foreign_before))
        result["decoy_alive_after"] = _alive(decoy.pid)
        decoy.kill()
        if not result["leftover_processes"]:  # logs of a cluster that did not stop stay for a look
            shutil.rmtree(temp_dir, ignore_errors=True)
    out.write_text(json.dumps(result, indent=1))


def _summarise(samples, t_run, t_done, t_released) -> dict:
    first_gpu = next(t for t, gpu, _ in samples if gpu and t >= t_run)
    return {
        "gpu_nodes_peak": max(len(gpu) for _, gpu, _ in samples),
        "gpu_node_ids": sorted({n for _, gpu, _ in samples for n in gpu}),
        "gpu_nodes_after_idle": len(samples[-1][1]),
        "cpu_nodes_after_idle": len(samples[-1][2]),
        "timings_s": {
            "gpu_node_up_after_submit": first_gpu - t_run,
            "run": t_done - t_run,
            "gpu_node_released_after_run": t_released - t_done,
        },
    }


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workload", choices=["synthetic", "pipeline"], default="synthetic")
    args = parser.parse_args()
    run_scenario(args.out, args.workload)
