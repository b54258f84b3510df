"""What the vLLM engine settles before vLLM starts (no vLLM needed): device defaults of its settings, the
model it loads for tiny-random-v1, and vLLM's log level."""

from __future__ import annotations

import logging

from rtprune.engines.contract import EngineConfig
from rtprune.engines.vllm.settings import CPU_KV_CACHE_GIB, VllmSettings
from rtprune.engines.vllm.startup import LOG_LEVEL_ENV, model_source, quiet_vllm, runs_on_cpu


def test_cpu_gets_a_small_kv_cache_and_eager_steps_and_gpus_keep_vllms_defaults():
    cpu, gpu = VllmSettings().engine_kwargs(cpu=True), VllmSettings().engine_kwargs(cpu=False)
    assert cpu["kv_cache_memory_bytes"] == int(CPU_KV_CACHE_GIB * 2**30) and CPU_KV_CACHE_GIB <= 2
    assert cpu["enforce_eager"] is True
    assert "kv_cache_memory_bytes" not in gpu and gpu["enforce_eager"] is False
    assert gpu["gpu_memory_utilization"] == 0.9


def test_set_fields_win_over_the_device_defaults():
    settings = VllmSettings(kv_cache_gib=3.0, enforce_eager=False)
    for cpu in (True, False):
        kwargs = settings.engine_kwargs(cpu=cpu)
        assert kwargs["kv_cache_memory_bytes"] == 3 * 2**30 and kwargs["enforce_eager"] is False


def test_the_device_is_told_from_the_config():
    assert runs_on_cpu(EngineConfig(device="cpu"))
    assert not runs_on_cpu(EngineConfig(device="cuda"))


def test_a_checkpoint_is_loaded_as_given_and_tiny_random_v1_from_its_cache_folder(tmp_path):
    assert model_source(EngineConfig(model="org/some-ocr"), VllmSettings()) == "org/some-ocr"
    settings = VllmSettings(model_cache_dir=str(tmp_path))
    folder = model_source(EngineConfig(model="tiny-random-v1", seed=0), settings)
    assert (
        folder.startswith(str(tmp_path)) and (tmp_path / folder.rsplit("/", 1)[1] / "config.json").is_file()
    )


def test_vllm_logs_at_the_settings_level_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv(LOG_LEVEL_ENV, raising=False)
    vllm_log = logging.getLogger("vllm")
    monkeypatch.setattr(vllm_log, "level", vllm_log.level)  # put back after the test
    assert quiet_vllm("WARNING") == "WARNING"
    assert logging.getLogger("vllm").level == logging.WARNING
    monkeypatch.setenv(LOG_LEVEL_ENV, "info")
    assert quiet_vllm("WARNING") == "INFO"
    assert logging.getLogger("vllm").level == logging.INFO
