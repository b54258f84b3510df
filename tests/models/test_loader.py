"""Loader: tiny-random names, local checkpoints by model_type, hub ids and the offline error."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from rtprune.engines.contract import EngineConfig
from rtprune.engines.hf.loader import detect_generation, load_backend, resolve_dtype


def test_tiny_random_v2_is_built_in_code_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="rtprune.engines.hf.loader"):
        backend = load_backend(EngineConfig(model="tiny-random-v2", device="cpu"))
    assert type(backend).__name__ == "DeepseekOcr2Backend" and backend.model_id == "tiny-random-v2"
    assert next(backend.model.parameters()).dtype == torch.float32
    assert "meaningless" in caplog.text


def test_dtype_auto_is_bf16_on_cuda_and_fp32_on_cpu():
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16


@pytest.mark.parametrize(("model_type", "generation"), [("deepseek_vl_v2", "v1"), ("deepseek_ocr2", "v2")])
def test_generation_is_read_from_config_json(tmp_path, model_type, generation):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
    assert detect_generation(tmp_path) == generation


def test_an_unknown_model_type_or_a_directory_without_config_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        detect_generation(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="'llama'"):
        detect_generation(tmp_path)


def test_a_local_v2_directory_loads_through_the_loader(tmp_path, tiny_v2):
    tiny_v2.model.save_pretrained(tmp_path)
    tiny_v2.tokenizer.save_pretrained(tmp_path)
    backend = load_backend(EngineConfig(model=str(tmp_path), device="cpu"))
    assert type(backend).__name__ == "DeepseekOcr2Backend" and backend.model_id == str(tmp_path)
    weight = "model.multi_modal_projector.weight"
    assert torch.equal(backend.model.state_dict()[weight], tiny_v2.model.state_dict()[weight])


def test_offline_hub_id_gives_an_error_naming_the_model_and_the_way_out(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)  # read once at import; patch the live value
    monkeypatch.setattr(
        hub_constants, "HF_HUB_CACHE", str(tmp_path)
    )  # an empty cache: nothing to fall back on
    with pytest.raises(RuntimeError) as err:
        load_backend(EngineConfig(model="deepseek-community/DeepSeek-OCR-2", device="cpu"))
    message = str(err.value)
    assert "deepseek-community/DeepSeek-OCR-2" in message
    assert "local directory" in message and "tiny-random" in message


def test_tiny_random_v1_is_built_in_code_in_the_configured_mode():
    backend = load_backend(EngineConfig(model="tiny-random-v1", mode="small", device="cpu"))
    assert type(backend).__name__ == "DeepseekOcrV1Backend"
    assert (backend.model_id, backend.mode) == ("tiny-random-v1", "small")
    assert backend.visual_tokens(640, 640) == 111  # small: 10 x 10 tokens, 10 newlines, 1 separator


def test_a_v1_hub_format_directory_loads_through_the_loader_as_v1(tmp_path, tiny_v1):
    from rtprune.models.deepseek_v1 import save_v1_checkpoint

    save_v1_checkpoint(tiny_v1.model, tiny_v1.model.config, tmp_path)
    tiny_v1.tokenizer.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "deepseek_vl_v2"
    backend = load_backend(EngineConfig(model=str(tmp_path), mode="gundam", device="cpu"))
    assert type(backend).__name__ == "DeepseekOcrV1Backend" and backend.mode == "gundam"
    reference, got = tiny_v1.model.state_dict(), backend.model.state_dict()
    assert all(torch.equal(reference[k], got[k]) for k in reference)
