"""infra/Dockerfile cannot be built here (no docker, no network); these checks keep it in step with the
project: every package ships in the image, one Ray version everywhere, a CUDA base."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

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
    assert re.search(r'"ray\[default,data\]==\$\(pin version ray\)"', DOCKERFILE)  # read from pyproject
    for manifest in ("raycluster.yaml", "rayjob.yaml", "nightly-cronjob.yaml"):
        text = (ROOT / "infra" / "k8s" / manifest).read_text()
        assert re.findall(r'rayVersion: "([^"]+)"', text) == [project_ray], manifest


def test_cuda_base_and_editable_install_of_the_copied_project():
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:[\d.]+-\S*runtime", DOCKERFILE, re.MULTILINE)
    assert 'pip install --editable "/home/ray/rtprune-ocr"' in DOCKERFILE
    assert re.search(r"^USER ray$", DOCKERFILE, re.MULTILINE)


def _pins():
    spec = importlib.util.spec_from_file_location("pins", ROOT / "tools" / "pins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_image_installs_the_vllm_extra_keeping_the_projects_transformers_pin():
    pyproject = _pyproject()
    (vllm_pin,) = pyproject["project"]["optional-dependencies"]["vllm"]
    assert re.fullmatch(r"vllm==[\d.]+", vllm_pin)  # the CUDA build, one exact version
    assert re.search(r'--editable "/home/ray/rtprune-ocr\[vllm\]"', DOCKERFILE)
    (transformers_pin,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("transformers")]
    assert "pin requirement transformers > /tmp/overrides.txt" in DOCKERFILE  # pyproject's pin, read
    assert transformers_pin == "transformers==" + _pins().version("transformers")
    assert re.search(r"^ARG WITH_VLLM=1$", DOCKERFILE, re.MULTILINE)  # vLLM is in the default image


def test_the_vllm_plugin_is_an_entry_point_so_the_install_registers_it_in_every_vllm_process():
    plugins = _pyproject()["project"].get("entry-points", {}).get("vllm.general_plugins", {})
    assert plugins, "pyproject.toml declares no vllm.general_plugins entry point"
    for target in plugins.values():
        module = target.split(":")[0]
        assert (ROOT / (module.replace(".", "/") + ".py")).exists() or (
            ROOT / module.replace(".", "/")
        ).is_dir()
        assert module.split(".")[0] in {
            p.rstrip("*") for p in _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
        }
    assert (
        "import vllm, rtprune.engines.vllm.plugin" in DOCKERFILE
    )  # the build fails if vLLM or the plugin cannot load


def test_the_cuda_base_matches_the_torch_wheels():
    cuda = re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:(\d+)\.(\d+)", DOCKERFILE, re.MULTILINE)
    index = re.search(r"^ARG TORCH_INDEX_URL=\S+/whl/cu(\d+)$", DOCKERFILE, re.MULTILINE)
    assert cuda and index and index.group(1) == cuda.group(1) + cuda.group(2)
