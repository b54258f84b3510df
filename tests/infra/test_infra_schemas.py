"""Schema checks for everything in infra/, no cluster or cloud needed:

- the KubeRay custom resources (RayCluster, RayJob, and the RayJob the nightly CronJob creates) against the
  CRD schemas of KubeRay v1.6.2 (tests/data/kuberay/, SOURCE.md says where they come from);
- the core Kubernetes objects (Namespace, ServiceAccount, Role, RoleBinding, ConfigMap, CronJob) and every
  custom resource's metadata against the Kubernetes schemas kubernetes-validate ships, for the oldest
  Kubernetes KubeRay 1.6's API reference links (1.28) and the newest the validator knows;
- the cluster launcher YAML's node_config against the EC2 RunInstances request botocore describes (Ray's
  own schema leaves node_config open; tests/infra/test_cluster_config.py checks the rest against it).

Unknown fields fail, as with `kubectl apply` (its field validation is strict by default). Each check is
shown to fail on a broken copy.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
CRDS = ROOT / "tests" / "data" / "kuberay"
KUBERAY_VERSION = "v1.6.2"
K8S_VERSIONS = ("1.28", kubernetes_validate.latest_version())


def strict(schema: Any) -> Any:
    """A CRD schema as the API server applies it with strict field validation: an object that lists its
    properties takes no others, unless it is marked to keep unknown fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def crd_validators() -> dict[str, jsonschema.Draft7Validator]:
    return {
        kind: jsonschema.Draft7Validator(strict(json.loads((CRDS / f"{kind.lower()}-v1.json").read_text())))
        for kind in ("RayCluster", "RayJob")
    }


def _manifests() -> list[tuple[str, dict]]:
    """(where, document) for every object in infra/k8s/, and the RayJob inside the nightly ConfigMap."""
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            found.append((f"{path.name}:{doc['kind']}", doc))
            for key, text in (doc.get("data") or {}).items() if doc["kind"] == "ConfigMap" else []:
                if key.endswith(".yaml"):
                    inner = yaml.safe_load(text)
                    found.append((f"{path.name}:ConfigMap/{key}:{inner['kind']}", inner))
    return found


MANIFESTS = _manifests()
CUSTOM = [(w, d) for w, d in MANIFESTS if d["apiVersion"].startswith("ray.io/")]
CORE = [(w, d) for w, d in MANIFESTS if not d["apiVersion"].startswith("ray.io/")]


def _errors(validator: jsonschema.Draft7Validator, doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_every_manifest_is_checked():
    kinds = sorted(d["kind"] for _, d in MANIFESTS)
    assert kinds.count("RayJob") == 2 and kinds.count("RayCluster") == 1 and "CronJob" in kinds
    assert {d["apiVersion"] for _, d in CUSTOM} == {"ray.io/v1"}  # the version the stored schemas describe


@pytest.mark.parametrize(("where", "doc"), CUSTOM, ids=[w for w, _ in CUSTOM])
def test_kuberay_resources_match_the_operators_crd(where, doc, crd_validators):
    assert _errors(crd_validators[doc["kind"]], doc) == []


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(("where", "doc"), CORE, ids=[w for w, _ in CORE])
def test_core_objects_match_the_kubernetes_schema(where, doc, version):
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(("where", "doc"), CUSTOM, ids=[w for w, _ in CUSTOM])
def test_custom_resource_metadata_is_kubernetes_object_metadata(where, doc, version):
    # The CRD schema leaves metadata to the API server: checked here as the metadata of a ConfigMap.
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}, version, True
    )


def _fields_with_cel_rules(schema: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if not isinstance(schema, dict):
        return []
    found = [path] if "x-kubernetes-validations" in schema else []
    for name, sub in schema.get("properties", {}).items():
        found += _fields_with_cel_rules(sub, (*path, name))
    if isinstance(schema.get("items"), dict):
        found += _fields_with_cel_rules(schema["items"], path)
    return found


@pytest.mark.parametrize(("where", "doc"), CUSTOM, ids=[w for w, _ in CUSTOM])
def test_no_manifest_sets_a_field_whose_rules_are_not_checked_here(where, doc):
    """The CRDs' CEL rules (x-kubernetes-validations) run only in an API server: the manifests set none
    of the fields that carry them (managedBy, deletionStrategy), so the schema check above is complete."""
    schema = json.loads((CRDS / f"{doc['kind'].lower()}-v1.json").read_text())
    for path in _fields_with_cel_rules(schema):
        node = doc
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        assert node is None, f"{where} sets {'.'.join(path)}, which has CEL rules"


# ---------------------------------------------------------------- broken copies fail


def _doc(kind: str) -> dict:
    (doc,) = [d for w, d in MANIFESTS if d["kind"] == kind and ":ConfigMap/" not in w]
    return copy.deepcopy(doc)


def _rename(node: dict, old: str, new: str) -> None:
    node[new] = node.pop(old)


@pytest.mark.parametrize(
    ("kind", "break_it", "expected"),
    [
        # A misspelt field of the operator's own spec.
        (
            "RayCluster",
            lambda d: _rename(d["spec"]["workerGroupSpecs"][1], "minReplicas", "minReplica"),
            "minReplica",
        ),
        (
            "RayJob",
            lambda d: _rename(d["spec"], "shutdownAfterJobFinishes", "shutdownAfterJobFinish"),
            "shutdownAfterJob",
        ),
        # rayStartParams are strings: a bare number is refused.
        (
            "RayCluster",
            lambda d: d["spec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
            "not of type",
        ),
        # A misspelt field deep in a pod template (the CRD embeds the pod spec).
        (
            "RayJob",
            lambda d: _rename(
                d["spec"]["rayClusterSpec"]["workerGroupSpecs"][1]["template"]["spec"]["containers"][0],
                "resources",
                "resource",
            ),
            "resource",
        ),
    ],
    ids=["cluster-group-field", "job-field", "start-param-type", "pod-template-field"],
)
def test_a_broken_kuberay_resource_fails(kind, break_it, expected, crd_validators):
    doc = _doc(kind)
    break_it(doc)
    errors = _errors(crd_validators[kind], doc)
    assert errors and any(expected in e for e in errors), errors


@pytest.mark.parametrize(
    ("kind", "break_it", "expected"),
    [
        (
            "CronJob",
            lambda d: _rename(d["spec"], "concurrencyPolicy", "concurrencypolicy"),
            "concurrencypolicy",
        ),
        ("CronJob", lambda d: d["spec"]["jobTemplate"]["spec"].update({"backoffLimit": "0"}), "not of type"),
        ("Role", lambda d: _rename(d["rules"][0], "apiGroups", "apiGroup"), "apiGroup"),
    ],
    ids=["cronjob-field", "cronjob-type", "role-field"],
)
def test_a_broken_core_object_fails(kind, break_it, expected):
    doc = _doc(kind)
    break_it(doc)
    with pytest.raises(kubernetes_validate.ValidationError, match=expected):
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


def test_broken_custom_resource_metadata_fails():
    doc = _doc("RayJob")
    doc["metadata"]["label"] = doc["metadata"].pop("labels")
    with pytest.raises(kubernetes_validate.ValidationError, match="label"):
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}, "1.28", True
        )


# ---------------------------------------------------------------- the cluster launcher's EC2 node_config


def _ec2_request_errors(node_config: dict) -> str:
    """What botocore's own parameter validation says about the RunInstances request Ray's AWS provider
    makes from a node_config (Ray adds MinCount/MaxCount and tags); "" when it is valid. No network."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("ec2", api_version=None)
    request = {**node_config, "MinCount": 1, "MaxCount": 1}
    return (
        ParamValidator()
        .validate(request, model.operation_model("RunInstances").input_shape)
        .generate_report()
    )


@pytest.fixture(scope="module")
def aws_config() -> dict:
    return yaml.safe_load((ROOT / "infra" / "cluster" / "aws.yaml").read_text())


def test_every_node_config_is_a_valid_ec2_request(aws_config):
    for name, node in aws_config["available_node_types"].items():
        assert _ec2_request_errors(node["node_config"]) == "", name


def test_a_broken_node_config_fails(aws_config):
    node = copy.deepcopy(aws_config["available_node_types"]["ray.worker.gpu"]["node_config"])
    node["InstanceTyp"] = node.pop("InstanceType")
    assert "InstanceTyp" in _ec2_request_errors(node)
    node = copy.deepcopy(aws_config["available_node_types"]["ray.worker.gpu"]["node_config"])
    node["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] = "150"
    assert "VolumeSize" in _ec2_request_errors(node)
