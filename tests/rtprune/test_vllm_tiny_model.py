"""The tiny-random-v1 folder the vLLM engine makes and caches (no vLLM needed): made once and then reused as
is, complete enough for the transformers engine's strict loader, safe when two processes make it at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rtprune.engines.vllm.tiny_model import folder_name, tiny_model_dir

ROOT = Path(__file__).absolute().parents[2]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    return root, tiny_model_dir(seed=0, cache_root=root)


def test_the_folder_is_a_v1_checkpoint_with_heads_vllm_can_run(made):
    _, folder = made
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "deepseek_vl_v2" and "auto_map" not in config
    assert config["language_config"]["hidden_size"] // config["language_config"]["num_attention_heads"] == 32
    assert config["vision_config"]["width"]["sam_vit_b"]["downsample_channels"][0] == 512  # vLLM's SAM
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    assert tok.convert_tokens_to_ids("<image>") == config["image_token_id"]
    assert tok("a").input_ids[0] == tok.bos_token_id  # BOS added, as DeepSeek-OCR's tokenizer does


def test_the_transformers_engine_loads_every_weight_of_it(made):
    from rtprune.models.deepseek_v1 import DeepseekOcrV1Backend

    backend = DeepseekOcrV1Backend.from_pretrained(str(made[1]), mode="tiny")  # strict: fails on any key
    assert backend.visual_tokens(640, 640) > 0


def test_a_second_call_returns_the_same_folder_without_rewriting_it(made):
    root, folder = made
    weights = folder / "model.safetensors"
    before = (weights.stat().st_ino, weights.stat().st_mtime_ns)
    assert tiny_model_dir(seed=0, cache_root=root) == folder
    assert (weights.stat().st_ino, weights.stat().st_mtime_ns) == before
    assert [p.name for p in root.iterdir()] == [folder.name]  # no staging folder left behind


def test_the_name_follows_the_seed_and_the_config(made):
    config = json.loads((made[1] / "config.json").read_text())
    assert folder_name(config, 0) == made[1].name
    assert folder_name(config, 1) != made[1].name
    assert folder_name(config | {"image_token_id": 816}, 0) != made[1].name


@pytest.mark.slow
@pytest.mark.ci
def test_two_processes_making_it_at_once_both_get_the_one_folder(tmp_path):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from rtprune.engines.vllm.tiny_model import tiny_model_dir\n"
        "print(tiny_model_dir(seed=3, cache_root=Path(sys.argv[1])))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] and [p.name for p in tmp_path.iterdir()] == [Path(outs[0]).name]
    assert (Path(outs[0]) / "model.safetensors").is_file()
