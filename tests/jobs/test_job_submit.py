"""The digitize job through Ray's job server, the way users run it: a real head node with its dashboard and
job server (`ray start --head`) and a second real node with the only (logical) GPU (`ray start --address`),
both on this machine; the job is submitted with JobSubmissionClient (`--working-dir`, as `ray job submit`
does) to read PDFs from and write pages to a local S3 server (moto). Token authentication is on, with a
token of the cluster's own.

- plain: the embedded default (relative ./out) is refused with its message; a job with S3 output
  commits every page exactly once; OCR actors ran on the GPU node (the head has no GPU, and the OCR stage
  asks for one).
- worker killed: the GPU node's raylet is killed once the first document is committed; a new GPU node
  joins; the job goes on through Ray Data's actor restarts (or, if it fails, is submitted again) and every
  page is committed exactly once.

Each scenario runs in its own Python process (this file as a script), as tests/jobs/test_autoscaling.py
does, and stops only the processes of its own cluster (found by its temp dir). Measured on the shared
2-core development machine at a load average of 20-40: plain 8 minutes (the nodes 1.5 of them, the OCR
actor's start 4), worker killed 12.5 minutes (the second GPU node needed three tries of
`ray start`); both are marked slow. Above a load of about 20 there, `ray start`
often fails: the raylet gives the dashboard agent 15 s to come up (see LocalCluster._start).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = {f"doc-{i:02d}.pdf": 1 + i % 2 for i in range(8)}  # 12 pages
# The kill scenario: twice the pages and longer decodes, so that OCR is still going when the first
# document is committed and the GPU node is killed.
KILL_DOCS = {f"doc-{i:02d}.pdf": 1 + i % 2 for i in range(16)}
OCR_NODE_RESOURCE = "rtprune_ocr_node"  # names the GPU nodes in Ray's state API


# ---------------------------------------------------------------- the tests (run a scenario, read JSON)


def _run_scenario(tmp_path: Path, scenario: str) -> dict:
    out = tmp_path / "scenario.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, __file__, "--out", str(out), "--scenario", scenario],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0 and out.exists(), (done.stdout + done.stderr)[-6000:]
    r = json.loads(out.read_text())
    print(json.dumps(r["timings_s"], indent=1))
    assert r.get("error") is None, r
    assert r["leftover_processes"] == [], r  # the cluster is gone, and only ours was signalled
    return r


def _check_run(r: dict) -> None:
    assert r["problems"] == [], r["problems"]  # every page of every document exactly once, all rows
    assert r["rows"] == r["pages_expected"]
    assert r["statuses"] == {"ok": r["pages_expected"]}
    # OCR actors only on the nodes that hold the GPU. Render actors ask for CPUs only, and Ray places them
    # on any node with a free one: on the head, or on the GPU node while the head's CPUs are taken by the
    # job's read tasks (seen in a quiet run), so where they ran is not asserted.
    assert r["render_nodes"] and set(r["render_nodes"]) <= {r["head_node"], *r["gpu_nodes"]}, r
    assert r["ocr_nodes"] and set(r["ocr_nodes"]) <= set(r["gpu_nodes"]), r
    assert r["head_node"] not in r["gpu_nodes"]


@pytest.mark.ci
@pytest.mark.slow
@pytest.mark.ray
def test_a_job_submitted_to_a_two_node_cluster_commits_every_page_once(tmp_path):
    r = _run_scenario(tmp_path, "plain")
    assert r["refused_status"] == "FAILED"
    assert "is a relative path" in r["refused_logs"] and "job server" in r["refused_logs"]
    assert r["job_statuses"] == ["SUCCEEDED"]
    _check_run(r)
    assert len(r["gpu_nodes"]) == 1


@pytest.mark.slow
@pytest.mark.ray
def test_killing_the_gpu_nodes_raylet_mid_run_loses_and_repeats_no_page(tmp_path):
    r = _run_scenario(tmp_path, "kill")
    assert r["killed_raylet"] and 0 < r["pages_committed_at_kill"] < r["pages_expected"], r
    assert r["job_statuses"][-1] == "SUCCEEDED", r  # the job itself, or its resubmission
    _check_run(r)
    # The OCR actor lost with the node was restarted on the new GPU node (or the rerun's ran there).
    assert len(r["gpu_nodes"]) == 2 and r["ocr_nodes"] == [r["gpu_node_b"]], r
    assert r["ocr_restarts"] >= 1 or len(r["job_statuses"]) == 2, r


# ---------------------------------------------------------------- the cluster (its own processes)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _own_ports() -> list[str]:
    """The ports a node would otherwise take at fixed defaults (which another Ray on this machine may
    hold), chosen free here. The metrics agent's ports stay Ray's choice: given explicitly, the raylet
    skips its waits for them and gives the slow-starting dashboard agent only one 15 s window in all."""
    names = (
        "node-manager-port",
        "object-manager-port",
        "dashboard-agent-listen-port",
        "runtime-env-agent-port",
    )
    return [f"--{name}={_free_port()}" for name in names]


def _flag(args: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith(name + "="))


class LocalCluster:
    """A head with its job server and GPU worker nodes, each a `ray start` of this interpreter's Ray."""

    def __init__(self, temp_dir: str) -> None:
        self.temp_dir = temp_dir
        self.port = self.dashboard_port = 0
        self.ray = str(Path(sys.executable).parent / "ray")
        # The job's `python` is the first on the PATH the head was started with: this environment's.
        self.env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        self.workers: dict[str, str] = {}  # resource name -> node manager port
        self.start_failures: list[str] = []

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _start(self, args: Callable[[], list[str]], temp_dir: str, attempts: int = 3) -> list[str]:
        """`ray start` with args() (fresh ports each try), again if it fails: on a loaded machine the
        dashboard agent can start too slowly for the raylet ("The current node timed out during
        startup"). A failed head is stopped before the next try. Returns the args that worked."""
        head = temp_dir == self.temp_dir
        for attempt in range(attempts):
            tried = args()
            cmd = [self.ray, "start", f"--temp-dir={temp_dir}", "--disable-usage-stats", *tried]
            done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=600)
            if done.returncode == 0:
                return tried
            self.start_failures.append(done.stderr[-300:])
            if head:
                self.stop()
            if attempt == attempts - 1:
                raise RuntimeError(f"ray start failed {attempts} times: {done.stderr[-3000:]}")
        raise AssertionError("not reached")

    def start_head(self) -> None:
        head = [
            "--head",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            "--num-cpus=4",
            "--num-gpus=0",
            f"--object-store-memory={200 * 2**20}",
        ]
        tried = self._start(
            lambda: [
                *head,
                f"--port={_free_port()}",
                f"--dashboard-port={_free_port()}",
                f"--ray-client-server-port={_free_port()}",
                *_own_ports(),
            ],
            temp_dir=self.temp_dir,
        )
        self.port = int(_flag(tried, "--port"))
        self.dashboard_port = int(_flag(tried, "--dashboard-port"))

    def add_gpu_worker(self, name: str) -> None:
        worker = [
            f"--address=127.0.0.1:{self.port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--num-gpus=1",
            f"--resources={json.dumps({name: 1})}",
            f"--object-store-memory={200 * 2**20}",
        ]
        # A temp dir of its own (inside the cluster's): nodes on one machine that share a session folder
        # also share its runtime_resources, and one node's agent then unpacks the job's working dir over
        # the copy the driver on the other node is importing from.
        tried = self._start(lambda: [*worker, *_own_ports()], temp_dir=f"{self.temp_dir}/{name[-1]}")
        self.workers[name] = _flag(tried, "--node-manager-port")

    def kill_raylet(self, name: str) -> bool:
        """SIGKILL the raylet of worker `name` (found by its node-manager port): the node dies abruptly."""
        import psutil

        flag = f"--node_manager_port={self.workers[name]}"
        for p in psutil.process_iter(["name", "cmdline"]):
            cmdline = p.info["cmdline"] or []
            if p.info["name"] == "raylet" and flag in cmdline and any(self.temp_dir in c for c in cmdline):
                p.send_signal(signal.SIGKILL)
                return True
        return False

    def stop(self) -> list[int]:
        """Stop every process of this cluster; returns those still alive after."""
        from tests.jobs.test_autoscaling import ray_processes, stop_processes

        stop_processes(ray_processes(self.temp_dir)[0])
        return ray_processes(self.temp_dir)[0]


# ---------------------------------------------------------------- the job and what it left


def _job_env(s3) -> dict:
    """The job's runtime_env: this checkout as its working dir (what `ray job submit --working-dir .`
    uploads) and the store's credentials as the standard AWS variables, which every task and actor of
    the job inherits (so they appear in no command line and no config)."""
    return {
        "working_dir": str(ROOT),
        "env_vars": {
            "AWS_ACCESS_KEY_ID": s3.access.key,
            "AWS_SECRET_ACCESS_KEY": s3.access.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    }


def _entrypoint(s3, output: str, max_new_tokens: int = 4) -> str:
    overrides = [
        "input=s3://rtp-jobs-in/pdfs/",
        f"output={output}",
        f"storage.endpoint_url={s3.url}",
        "engine.model=tiny-random-v1",
        f"engine.max_new_tokens={max_new_tokens}",
        "page_policy.greedy_retry=false",  # the random model always ends at the cap: one attempt a page
        "pools.ocr_num_cpus=1",  # the GPU node's one CPU: no render actor fits beside the OCR actor
        "pools.ocr_batch_size=2",
        "pools.ocr_sub_batch_size=2",
        "commit_documents=1",
        "progress_interval_s=5",
    ]
    return "python -m jobs.digitize " + " ".join(overrides)


def _wait(client, submission_id: str, timeout_s: float = 900) -> str:
    from ray.job_submission import JobStatus

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get_job_status(submission_id)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            return str(status.value)
        time.sleep(1)
    client.stop_job(submission_id)
    return "TIMEOUT"


def _placement(cluster: LocalCluster, job_ids: list[str]) -> dict:
    """Where the job's render and OCR actors ran, from Ray's state API (dead actors included)."""
    from ray.util.state import list_actors, list_nodes

    nodes = list_nodes(address=cluster.dashboard, detail=True, limit=100)
    head = next(n.node_id for n in nodes if n.is_head_node)
    gpu = {n.node_id: name for n in nodes for name in n.resources_total if name in cluster.workers}
    actors = [
        a
        for job_id in job_ids
        for a in list_actors(
            address=cluster.dashboard, filters=[("job_id", "=", job_id)], limit=1000, detail=True
        )
    ]
    return {
        "head_node": head,
        "gpu_nodes": sorted(gpu),
        "gpu_node_a": next((n for n, name in gpu.items() if name.endswith("-a")), ""),
        "gpu_node_b": next((n for n, name in gpu.items() if name.endswith("-b")), ""),
        "render_nodes": sorted({a.node_id for a in actors if "RenderStage" in a.class_name}),
        "ocr_nodes": sorted({a.node_id for a in actors if "OcrStage" in a.class_name}),
        # A restarted actor keeps its id; the state API shows where it lives now and how often it restarted.
        "ocr_restarts": sum(int(a.num_restarts or 0) for a in actors if "OcrStage" in a.class_name),
    }


def _committed(s3, output: str, docs: dict[str, int]) -> dict:
    from pipeline.config import StorageConfig
    from pipeline.store.fs import filesystem
    from pipeline.store.read import read_committed
    from tests.reliability.pipeline_harness import exactly_once_problems

    storage = StorageConfig(endpoint_url=s3.url, key=s3.access.key, secret=s3.access.secret)
    filesystem(output, storage)[0].invalidate_cache()  # fsspec keeps listings of an earlier read
    table = read_committed(output, storage, latest_only=False)  # every row ever committed
    expected = {f"s3://rtp-jobs-in/pdfs/{name}": pages for name, pages in docs.items()}
    return {
        "problems": exactly_once_problems(table, expected),
        "rows": table.num_rows,
        "pages_expected": sum(docs.values()),
        "statuses": dict(Counter(table["status"].to_pylist())),
    }


def _parts_committed(s3, prefix: str) -> int:
    """Parts the run has committed so far, from the ledger."""
    listing = s3.access.client().list_objects_v2(Bucket="rtp-jobs-out", Prefix=f"{prefix}/_ledger/")
    return len(listing.get("Contents", []))


# ---------------------------------------------------------------- the scenarios


def _plain(cluster: LocalCluster, client, s3, result: dict) -> list[str]:
    refused = client.submit_job(entrypoint="python -m jobs.digitize", runtime_env=_job_env(s3))
    result["refused_status"] = _wait(client, refused, timeout_s=300)
    result["refused_logs"] = client.get_job_logs(refused)[-2000:]
    result["timings_s"]["refused_job"] = time.monotonic() - result["t0"]
    sid = client.submit_job(entrypoint=_entrypoint(s3, "s3://rtp-jobs-out/plain"), runtime_env=_job_env(s3))
    result["job_statuses"] = [_wait(client, sid)]
    result["job_logs"] = client.get_job_logs(sid)[-4000:]
    result.update(_committed(s3, "s3://rtp-jobs-out/plain", DOCS))
    return [client.get_job_info(sid).job_id]


def _kill(cluster: LocalCluster, client, s3, result: dict) -> list[str]:
    output = "s3://rtp-jobs-out/kill"
    entrypoint = _entrypoint(s3, output, max_new_tokens=32)
    sid = client.submit_job(entrypoint=entrypoint, runtime_env=_job_env(s3))
    while _parts_committed(s3, "kill") == 0 and not client.get_job_status(sid).is_terminal():
        time.sleep(0.2)
    result["pages_committed_at_kill"] = _committed(s3, output, KILL_DOCS)["rows"]
    result["killed_raylet"] = cluster.kill_raylet(f"{OCR_NODE_RESOURCE}-a")
    result["timings_s"]["killed_after"] = time.monotonic() - result["t0"]
    cluster.add_gpu_worker(f"{OCR_NODE_RESOURCE}-b")
    result["timings_s"]["second_gpu_node_up"] = time.monotonic() - result["t0"]
    submissions = [sid]
    result["job_statuses"] = [_wait(client, sid)]
    if result["job_statuses"][-1] != "SUCCEEDED":  # the job did not survive: a rerun finishes the work
        submissions.append(client.submit_job(entrypoint=entrypoint, runtime_env=_job_env(s3)))
        result["job_statuses"].append(_wait(client, submissions[-1]))
    result["job_logs"] = [client.get_job_logs(s)[-3000:] for s in submissions]
    result.update(_committed(s3, output, KILL_DOCS))
    return [j for j in (client.get_job_info(s).job_id for s in submissions) if j]


def _use_own_auth_token(temp_dir: str) -> None:
    """Token authentication with a token of this cluster's own (not ~/.ray/auth_token, which anyone on the
    machine may replace). Before `import ray`: Ray reads RAY_AUTH_MODE once, at import."""
    token = Path(temp_dir) / "auth_token"
    token.write_text(secrets.token_hex(32))
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})


def _upload_inputs(s3, docs: dict[str, int]) -> None:
    from pipeline.samples import sample_pdf_bytes

    client = s3.access.client()
    for bucket in ("rtp-jobs-in", "rtp-jobs-out"):
        client.create_bucket(Bucket=bucket)
    for i, (name, pages) in enumerate(docs.items()):
        client.put_object(Bucket="rtp-jobs-in", Key=f"pdfs/{name}", Body=sample_pdf_bytes(pages, seed=i))


def run_scenario(out: Path, scenario: str) -> None:
    temp_dir = tempfile.mkdtemp(prefix="rtpjs", dir="/tmp")  # short: Unix socket paths are capped
    _use_own_auth_token(temp_dir)
    from ray.job_submission import JobSubmissionClient

    from tests.reliability.s3_server import MotoS3

    cluster = LocalCluster(temp_dir)
    result: dict = {"timings_s": {}, "t0": time.monotonic(), "error": None}
    try:
        cluster.start_head()
        result["timings_s"]["head_up"] = time.monotonic() - result["t0"]
        cluster.add_gpu_worker(f"{OCR_NODE_RESOURCE}-a")
        result["timings_s"]["gpu_node_up"] = time.monotonic() - result["t0"]
        with MotoS3() as s3:
            _upload_inputs(s3, DOCS if scenario == "plain" else KILL_DOCS)
            client = JobSubmissionClient(cluster.dashboard)
            job_ids = (_plain if scenario == "plain" else _kill)(cluster, client, s3, result)
            result["timings_s"]["jobs_done"] = time.monotonic() - result["t0"]
            result.update(_placement(cluster, job_ids))
    except Exception as exc:  # reported in the JSON, with the cluster's logs kept for a look
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        result["start_failures"] = cluster.start_failures
        result["leftover_processes"] = cluster.stop()
        result["timings_s"]["total"] = time.monotonic() - result.pop("t0")
        succeeded = set(result.get("job_statuses", [])) == {"SUCCEEDED"}
        if not result["leftover_processes"] and result["error"] is None and succeeded:
            shutil.rmtree(temp_dir, ignore_errors=True)
        else:
            result["temp_dir"] = temp_dir
    out.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scenario", choices=["plain", "kill"], required=True)
    args = parser.parse_args()
    run_scenario(args.out, args.scenario)
