"""infra/Dockerfile cannot be built here (no docker, no network); these checks keep it in step with the
project: every package ships in the image, one Ray version everywhere, a CUDA base."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "infra" / "Dockerfile").read_text()


def _copied() -> set[str]:
    return {m.group(1) for m in re.finditer(r"^COPY (?:--chown=\S+ )?(\S+) ", DOCKERFILE, re.MULTILINE)}


def test_every_packaged_directory_and_the_pricing_table_are_copied():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in patterns}
    assert packages <= _copied() and "infra" in _copied() and "pyproject.toml" in _copied()


def test_one_ray_version_in_the_project_the_image_and_kuberay():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (project_ray,) = [re.search(r"==([\d.]+)", d).group(1) for d in deps if d.startswith("ray[")]
    assert re.search(rf'"ray\[default,data\]=={re.escape(project_ray)}"', DOCKERFILE)
    cluster = yaml.safe_load((ROOT / "infra" / "k8s" / "raycluster.yaml").read_text())
    assert cluster["spec"]["rayVersion"] == project_ray


def test_cuda_base_and_editable_install_of_the_copied_project():
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:[\d.]+-\S*runtime", DOCKERFILE, re.MULTILINE)
    assert "pip install --editable \"/home/ray/rtprune-ocr\"" in DOCKERFILE
    assert re.search(r"^USER ray$", DOCKERFILE, re.MULTILINE)
