"""infra/k8s/: KubeRay RayCluster, RayJob and the nightly CronJob. Every manifest is parsed and the
structure that matters checked; the CronJob's submit script runs against a stand-in kubectl."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.cost.pricing import load_pricing

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
IMAGE_HOME = "/home/ray/rtprune-ocr"  # where infra/Dockerfile puts the repository


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _one(name: str, kind: str) -> dict:
    (doc,) = [d for d in _docs(name) if d["kind"] == kind]
    return doc


@pytest.fixture(scope="module")
def cluster_spec() -> dict:
    return _one("raycluster.yaml", "RayCluster")["spec"]


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return _one("rayjob.yaml", "RayJob")


def _groups(spec: dict) -> dict[str, dict]:
    return {"head": spec["headGroupSpec"], **{g["groupName"]: g for g in spec["workerGroupSpecs"]}}


def _container(group: dict) -> dict:
    (c,) = group["template"]["spec"]["containers"]
    return c


def test_every_manifest_parses_with_api_version_kind_and_one_namespace():
    kinds = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _docs(path.name):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"], path.name
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == "rtprune-ocr", (path.name, doc["kind"])
            kinds.setdefault(path.name, []).append(doc["kind"])
    assert kinds["raycluster.yaml"] == ["RayCluster"] and kinds["rayjob.yaml"] == ["RayJob"]
    assert "CronJob" in kinds["nightly-cronjob.yaml"]
    assert _one("raycluster.yaml", "RayCluster")["apiVersion"] == "ray.io/v1"
    assert _one("rayjob.yaml", "RayJob")["apiVersion"] == "ray.io/v1"
    assert _one("nightly-cronjob.yaml", "CronJob")["apiVersion"] == "batch/v1"


def test_autoscaling_is_on_and_gpu_workers_start_at_zero(cluster_spec):
    assert cluster_spec["enableInTreeAutoscaling"] is True
    assert 0 < cluster_spec["autoscalerOptions"]["idleTimeoutSeconds"] <= 900
    gpu = [
        g
        for g in cluster_spec["workerGroupSpecs"]
        if "nvidia.com/gpu" in _container(g)["resources"]["limits"]
    ]
    assert len(gpu) == 1
    assert gpu[0]["minReplicas"] == 0 and gpu[0]["replicas"] == 0 and gpu[0]["maxReplicas"] >= 1
    cpu = [g for g in cluster_spec["workerGroupSpecs"] if g not in gpu]
    assert cpu and all(g["maxReplicas"] >= g["minReplicas"] >= 0 for g in cpu)


def test_ray_start_params_match_container_resources(cluster_spec):
    for name, group in _groups(cluster_spec).items():
        res = _container(group)["resources"]
        assert res["limits"] == res["requests"], name  # guaranteed QoS: Ray's memory accounting holds
        params = group["rayStartParams"]
        expected_cpus = "0" if name == "head" else res["limits"]["cpu"]
        assert params["num-cpus"] == expected_cpus, name
        assert params.get("num-gpus", "0") == res["limits"].get("nvidia.com/gpu", "0"), name


def _cpu(q: str) -> float:
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def test_pods_fit_the_priced_instance_types(cluster_spec):
    pricing = load_pricing()
    for name, group in _groups(cluster_spec).items():
        pod = group["template"]["spec"]
        instance = pod["nodeSelector"]["node.kubernetes.io/instance-type"]
        assert instance in pricing.node_types, f"{name}: {instance} missing from pipeline/cost/pricing.yaml"
        limits = _container(group)["resources"]["limits"]
        assert _cpu(limits["cpu"]) < pricing.node_types[instance].cpus, name  # room for the kubelet
        assert int(limits.get("nvidia.com/gpu", 0)) == pricing.node_types[instance].gpus, name


def test_every_ray_pod_runs_the_image_the_cluster_launcher_uses(cluster_spec):
    aws = yaml.safe_load((ROOT / "infra" / "cluster" / "aws.yaml").read_text())
    images = {_container(g)["image"] for g in _groups(cluster_spec).values()}
    assert images == {aws["docker"]["image"]}


def test_rayjob_runs_digitize_on_the_same_cluster_spec(rayjob, cluster_spec):
    spec = rayjob["spec"]
    assert spec["entrypoint"].startswith("python -m jobs.digitize --config ")
    config_path = spec["entrypoint"].split("--config ")[1].split()[0]
    assert config_path.startswith(IMAGE_HOME + "/")
    assert (ROOT / config_path.removeprefix(IMAGE_HOME + "/")).exists()  # the config ships in the image
    assert spec["rayClusterSpec"] == cluster_spec
    assert spec["shutdownAfterJobFinishes"] is True and spec["activeDeadlineSeconds"] > 0


def _nightly() -> dict[str, dict]:
    return {d["kind"]: d for d in _docs("nightly-cronjob.yaml")}


def test_nightly_cronjob_creates_this_rayjob_and_never_overlaps(rayjob):
    docs = _nightly()
    embedded = yaml.safe_load(docs["ConfigMap"]["data"]["rayjob.yaml"])
    assert embedded["kind"] == "RayJob" and embedded["spec"] == rayjob["spec"]
    assert embedded["metadata"]["generateName"] and "name" not in embedded["metadata"]
    cron = docs["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    job = cron["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > rayjob["spec"]["activeDeadlineSeconds"]
    pod = job["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    mount = pod["containers"][0]["volumeMounts"][0]["mountPath"]
    assert pod["containers"][0]["command"][-1] == f"{mount}/submit.sh"
    assert f"{mount}/rayjob.yaml" in docs["ConfigMap"]["data"]["submit.sh"]


def test_scheduler_account_may_create_and_read_rayjobs():
    docs = _nightly()
    account = docs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"]
    assert docs["ServiceAccount"]["metadata"]["name"] == account
    assert {"kind": "ServiceAccount", "name": account, "namespace": "rtprune-ocr"} in docs["RoleBinding"][
        "subjects"
    ]
    assert docs["RoleBinding"]["roleRef"]["name"] == docs["Role"]["metadata"]["name"]
    (rule,) = docs["Role"]["rules"]
    assert rule["apiGroups"] == ["ray.io"] and rule["resources"] == ["rayjobs"]
    assert {"create", "get"} <= set(rule["verbs"])


def _fake_kubectl(tmp_path: Path, states: list[str], job_status: str) -> Path:
    """A stand-in kubectl (no cluster here): `create` prints a name, `get` walks through `states`."""
    (tmp_path / "states").write_text("\n".join(states) + "\n")
    script = tmp_path / "bin" / "kubectl"
    script.parent.mkdir()
    script.write_text(f"""#!/bin/sh
echo "$@" >> {tmp_path}/calls
case "$*" in
  create*) echo rayjob.ray.io/rtprune-ocr-nightly-abc12 ;;
  *jobDeploymentStatus*) head -n1 {tmp_path}/states; sed -i 1d {tmp_path}/states ;;
  *jobStatus*) echo {job_status} ;;
  *message*) echo "deadline exceeded" ;;
esac
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script.parent


@pytest.mark.parametrize(
    ("states", "job_status", "rc"),
    [
        (["Initializing", "Running", "Running", "Complete"], "SUCCEEDED", 0),
        (["Running", "Complete"], "FAILED", 1),
        (["Initializing", "Failed"], "", 1),
    ],
)
def test_submit_script_waits_for_the_rayjob_and_reports_its_outcome(tmp_path, states, job_status, rc):
    script = tmp_path / "submit.sh"
    script.write_text(_nightly()["ConfigMap"]["data"]["submit.sh"])
    env = {
        **os.environ,
        "PATH": f"{_fake_kubectl(tmp_path, states, job_status)}:{os.environ['PATH']}",
        "POLL_S": "0",
    }
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == rc, done.stdout + done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0].startswith("create -f /etc/rtprune-ocr/rayjob.yaml")
    assert sum("jobDeploymentStatus" in c for c in calls) == len(states)  # polled until the end state


def test_gpu_pods_give_the_vllm_engine_shared_memory(cluster_spec):
    (gpu,) = [
        g
        for g in cluster_spec["workerGroupSpecs"]
        if "nvidia.com/gpu" in _container(g)["resources"]["limits"]
    ]
    pod = gpu["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in _container(gpu)["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    assert volumes[mount["name"]]["emptyDir"]["medium"] == "Memory"
    limit = volumes[mount["name"]]["emptyDir"]["sizeLimit"]
    assert limit.endswith("Gi") and int(limit[:-2]) < int(
        _container(gpu)["resources"]["limits"]["memory"][:-2]
    )
