"""Version pins are written once, in pyproject.toml: tools/pins.py reads them, and no installer repeats one."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("pins", ROOT / "tools" / "pins.py")
pins = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pins)

INSTALLERS = ["tools/bootstrap.py", "infra/vllm/install.sh", "infra/Dockerfile"]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pins_read_what_pyproject_says():
    project = _project()
    deps = project["project"]["dependencies"]
    assert pins.requirement("transformers") in deps
    assert f"ray[data,default]=={pins.version('ray')}" in deps  # the job server too
    assert project["project"]["optional-dependencies"]["vllm"] == [f"vllm=={pins.version('vllm')}"]
    assert pins.requirement("boto3") in project["project"]["optional-dependencies"]["test"]
    assert pins.version("torch") == project["tool"]["rtprune-ocr"]["pins"]["torch"]
    assert pins.version("uv") == project["tool"]["rtprune-ocr"]["pins"]["uv"]


def test_a_name_without_a_pin_is_an_error(tmp_path):
    with pytest.raises(KeyError, match="no requirement"):
        pins.requirement("no-such-package")
    with pytest.raises(KeyError, match="no exact version"):
        pins.version("pydantic")  # a range, not a pin
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "pins.py"), "version", "pydantic"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "no exact version" in out.stderr


@pytest.mark.parametrize("installer", INSTALLERS)
def test_no_installer_repeats_a_pinned_version(installer):
    versions = {name: pins.version(name) for name in ("torch", "transformers", "vllm", "ray", "uv")}
    versions["boto3"] = pins.requirement("boto3").removeprefix("boto3")
    code = [line for line in (ROOT / installer).read_text().splitlines() if not line.lstrip().startswith("#")]
    for name, version in versions.items():
        hits = [line for line in code if re.search(re.escape(version) + r"(?![\d.])", line)]
        assert not hits, f"{installer} repeats the {name} pin {version}: {hits}"
