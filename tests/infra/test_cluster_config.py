"""infra/cluster/aws.yaml: valid for Ray's own cluster launcher, and the shape the pipeline relies on."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from pipeline.cost.pricing import load_pricing

ROOT = Path(__file__).resolve().parents[2]
AWS_YAML = ROOT / "infra" / "cluster" / "aws.yaml"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(AWS_YAML.read_text())


@pytest.fixture(scope="module")
def ray_schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _workers(config: dict) -> dict[str, dict]:
    return {k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]}


def _gpu_types(config: dict) -> dict[str, dict]:
    return {k: v for k, v in _workers(config).items() if v["resources"].get("GPU", 0) > 0}


def test_validates_against_rays_schema(config, ray_schema):
    import jsonschema

    jsonschema.validate(config, ray_schema)


def test_the_schema_check_catches_a_misspelt_field(config, ray_schema):
    import jsonschema

    bad = copy.deepcopy(config)
    gpu = next(iter(_gpu_types(bad)))
    bad["available_node_types"][gpu]["min_worker"] = bad["available_node_types"][gpu].pop("min_workers")
    with pytest.raises(jsonschema.ValidationError, match="min_worker"):
        jsonschema.validate(bad, ray_schema)


def test_rays_launcher_accepts_it_after_filling_defaults(config):
    # prepare_config merges the AWS provider's defaults the way `ray up` does (no cloud calls).
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def test_gpu_workers_scale_from_zero_and_idle_nodes_go(config):
    gpu = _gpu_types(config)
    assert len(gpu) == 1
    (node,) = gpu.values()
    assert node["min_workers"] == 0 and node["max_workers"] >= 1
    assert 0 < config["idle_timeout_minutes"] <= 15
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0}


def test_a_cpu_worker_type_renders(config):
    cpu = {k: v for k, v in _workers(config).items() if not v["resources"].get("GPU")}
    assert cpu and all(v["resources"]["CPU"] >= 4 for v in cpu.values())


def test_cluster_max_workers_covers_every_type(config):
    assert config["max_workers"] >= sum(v.get("max_workers", 0) for v in _workers(config).values())


def test_instance_types_are_priced_and_resources_match_the_price_table(config):
    pricing = load_pricing()
    for name, node in config["available_node_types"].items():
        instance = node["node_config"]["InstanceType"]
        assert instance in pricing.node_types, f"{name}: {instance} missing from pipeline/cost/pricing.yaml"
        priced = pricing.node_types[instance]
        assert node["resources"].get("GPU", 0) == priced.gpus, name
        if name != config["head_node_type"]:  # the head advertises CPU 0 on purpose
            assert node["resources"]["CPU"] == priced.cpus, name
    assert (
        config["available_node_types"][config["head_node_type"]]["node_config"]["InstanceType"]
        == pricing.head_node_type
    )


def test_nodes_run_the_project_image_and_install_the_checkout(config):
    assert config["docker"]["image"].split("/")[-1].startswith("rtprune-ocr:")
    mount_target = next(t for t, src in config["file_mounts"].items() if src == ".")
    assert any(f"install --no-deps --editable {mount_target}" in c for c in config["setup_commands"])
    assert (ROOT / "pyproject.toml").exists()  # "." is the repository root `ray up` runs from
    assert any("--autoscaling-config" in c for c in config["head_start_ray_commands"])
