"""Which engine serves which model, checked from the config alone (no vLLM, transformers or weights): the
vLLM engine serves DeepSeek-OCR v1 checkpoints and the built-in tiny-random-v1 (as a folder it makes); v2,
tiny-random-v2 included, is the transformers engine's. A digitize job with a pairing no engine serves stops before Ray starts, with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rtprune.engines import EngineConfig, check_engine, resolve_backend

ROOT = Path(__file__).absolute().parents[2]


def _checkpoint(tmp_path: Path, model_type: str) -> str:
    folder = tmp_path / model_type
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    return str(folder)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"model": "tiny-random-v2"}, ["'tiny-random-v2'", "engine.backend=hf"]),
        ({"model": "some/hub-id", "generation": "v2"}, ["v2", "engine.backend=hf"]),
    ],
)
def test_vllm_refuses_what_only_the_transformers_engine_has(fields, words):
    with pytest.raises(ValueError) as info:
        check_engine(EngineConfig(backend="vllm", **fields))
    message = str(info.value)
    assert "\n" not in message and message.startswith("engine.model")
    for word in words:
        assert word in message


def test_vllm_refuses_a_v2_checkpoint_folder_and_takes_a_v1_one(tmp_path):
    with pytest.raises(ValueError, match="DeepSeek-OCR v2"):
        check_engine(EngineConfig(backend="vllm", model=_checkpoint(tmp_path, "deepseek_ocr2")))
    check_engine(EngineConfig(backend="vllm", model=_checkpoint(tmp_path, "deepseek_vl_v2")))


def test_vllm_takes_the_built_in_tiny_v1_but_not_a_v2_generation_of_it():
    check_engine(EngineConfig(backend="vllm", model="tiny-random-v1"))
    with pytest.raises(ValueError, match="DeepSeek-OCR v2"):
        check_engine(EngineConfig(backend="vllm", model="tiny-random-v1", generation="v2"))


def test_the_transformers_engine_takes_every_model_and_auto_never_picks_vllm_for_one_it_cannot_serve(
    tmp_path,
):
    check_engine(EngineConfig(backend="hf", model="tiny-random-v1"))
    for model in ("tiny-random-v2", _checkpoint(tmp_path, "deepseek_ocr2")):
        check_engine(EngineConfig(backend="hf", model=model))
        check_engine(EngineConfig(backend="auto", model=model))
        assert resolve_backend(EngineConfig(backend="auto", model=model)) == "hf"


def test_the_check_loads_no_engine(tmp_path):
    code = (
        "import sys\n"
        "from rtprune.engines import EngineConfig, check_engine\n"
        "try:\n"
        "    check_engine(EngineConfig(backend='vllm', model='tiny-random-v2'))\n"
        "except ValueError:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('vllm', 'transformers', 'ray') if m in sys.modules)\n"
        "print(','.join(heavy) or 'none')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"


def test_digitize_stops_on_an_engine_model_mismatch_before_ray_starts(tmp_path):
    """In a process of its own: the tests' shared Ray would hide whether the job started one."""
    code = (
        "import sys\n"
        "from jobs.digitize import main\n"
        "rc = main(['engine.backend=vllm', 'engine.model=tiny-random-v2'])\n"
        "ray = sys.modules.get('ray')\n"
        "print(rc, bool(ray and ray.is_initialized()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.stdout.strip() == "2 False", done.stderr
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and "tiny-random-v2" in err and err.startswith("digitize: "), err
    assert list(tmp_path.iterdir()) == []  # not even the sample input was written
