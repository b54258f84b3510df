"""./ocr's bootstrap: pip's settings handed on to uv, the CPU torch rule, the stamp that decides a refresh,
and (slow) a copy of the checkout set up from nothing by the README's own command."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).absolute().parents[2]
_spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "tools" / "bootstrap.py")
bootstrap = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bootstrap)

# What `pip config list` prints with settings in a global file and in PIP_* variables.
PIP_CONFIG_LIST = """\
:env:.default-timeout='180'
:env:.find-links='/srv/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='{constraint}'
global.extra-index-url='file:///srv/a/simple file:///srv/b/simple'
global.find-links='/opt/other'
install.index-url='https://mirror.example/simple'
"""


def test_pip_settings_are_read_from_pip_config_list(tmp_path):
    settings = bootstrap.pip_settings(PIP_CONFIG_LIST.format(constraint=tmp_path / "c.txt"))
    assert settings == {
        "find-links": ["/opt/other"],  # the later source wins, as in pip
        "constraint": [str(tmp_path / "c.txt")],
        "extra-index-url": ["file:///srv/a/simple", "file:///srv/b/simple"],
        "index-url": ["https://mirror.example/simple"],
    }
    assert bootstrap.pip_settings("") == {}


def test_pip_settings_become_uv_options(tmp_path):
    (tmp_path / "c.txt").write_text("torch<=2.14.1\n")
    settings = bootstrap.pip_settings(PIP_CONFIG_LIST.format(constraint=tmp_path / "c.txt"))
    args = bootstrap.uv_index_args(settings)
    assert args == [
        "--index-url",
        "https://mirror.example/simple",
        "--extra-index-url",
        "file:///srv/a/simple",
        "--extra-index-url",
        "file:///srv/b/simple",
        "--index-strategy",
        "unsafe-best-match",
        "--find-links",
        "/opt/other",
        "--constraint",
        str(tmp_path / "c.txt"),
    ]
    missing = bootstrap.pip_settings(PIP_CONFIG_LIST.format(constraint=tmp_path / "gone.txt"))
    assert "--constraint" not in bootstrap.uv_index_args(missing)  # pip would fail on it; uv skips it
    assert bootstrap.uv_index_args({}) == []  # no pip settings: uv's defaults


def test_cpu_torch_comes_from_a_local_wheel_or_the_cpu_index_never_the_default(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    cmd = bootstrap.install_command("cpu", {"find-links": [str(wheels)]}, "uv", "py", "lock.txt")
    assert cmd[cmd.index("--torch-backend") + 1] == "cpu" and bootstrap.TORCH_CPU in cmd
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    for link in (str(wheels), f"file://{wheels}"):
        cmd = bootstrap.install_command("cpu", {"find-links": [link]}, "uv", "py", "lock.txt")
        assert "--torch-backend" not in cmd and cmd[cmd.index("--find-links") + 1] == link
    cmd = bootstrap.install_command("cpu", {}, "uv", "py", "lock.txt")
    assert "--torch-backend" in cmd and cmd[cmd.index("--constraint") + 1] == "lock.txt"


def test_gpu_install_takes_the_vllm_extra_and_no_cpu_torch():
    cmd = bootstrap.install_command("gpu", {}, "uv", "py", "lock-without-torch.txt", "overrides.txt")
    assert cmd[-1].endswith("[test,vllm]") and bootstrap.TORCH_CPU not in cmd and "--torch-backend" not in cmd
    # vLLM declares an older transformers than the project pins: the override keeps ours
    assert cmd[cmd.index("--override") + 1] == "overrides.txt"


def test_test_arguments_pick_the_suites_by_path():
    options, main, vllm = bootstrap.split_test_args(
        [
            "-q",
            "-m",
            "slow",
            "-k",
            "kill",
            "tests/pipeline",
            "tests/vllm/test_engine_pages.py::test_x",
            "tests/vllm",
        ]
    )
    assert options == ["-q", "-m", "slow", "-k", "kill"]
    assert main == ["tests/pipeline"]
    assert vllm == ["tests/vllm/test_engine_pages.py::test_x", "tests/vllm"]
    assert bootstrap.split_test_args(["-q"]) == (["-q"], [], [])


def test_stamp_changes_with_the_mode_and_stays_put_otherwise():
    assert bootstrap.stamp("cpu") == bootstrap.stamp("cpu") != bootstrap.stamp("gpu")


def test_lock_pins_the_cpu_torch_and_the_boto_window():
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith((" ", "#")) and ";" not in line
    )
    assert pins["torch"] == bootstrap.TORCH_CPU.split("==")[1]
    botocore = tuple(int(x) for x in pins["botocore"].split("."))
    assert pins["aiobotocore"] == "3.10.0" and (1, 43, 115) <= botocore < (1, 43, 118)


def test_unknown_commands_print_the_usage(capsys):
    assert bootstrap.main([]) == 2 and "./ocr digitize" in capsys.readouterr().err
    assert bootstrap.main(["setup", "--cuda"]) == 2 and "--cuda" in capsys.readouterr().err


def _copy_checkout(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


@pytest.mark.slow
def test_a_fresh_checkout_sets_itself_up_on_first_use(tmp_path):
    """The README's path from nothing: ./ocr creates .venv with the CPU torch, then reuses it until the
    dependencies change."""
    repo = tmp_path / "repo"
    _copy_checkout(repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    probe = "import importlib.metadata as m, torch; print(torch.__version__, any(d.metadata['Name'].startswith('nvidia') for d in m.distributions()))"
    first = subprocess.run(
        [str(repo / "ocr"), "python", "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    version, has_nvidia = first.stdout.split()
    assert version.startswith("2.13.0") and has_nvidia == "False"  # the CPU build, no CUDA packages
    assert "setting up .venv" in first.stderr
    again = subprocess.run(
        [str(repo / "ocr"), "python", "-c", "print('ok')"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.stdout.strip() == "ok" and "setting up" not in again.stderr  # up to date: no install
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "\n")
    changed = subprocess.run(
        [str(repo / "ocr"), "python", "-c", "print('ok')"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert changed.stdout.strip() == "ok" and "setting up" in changed.stderr  # dependencies may have moved
