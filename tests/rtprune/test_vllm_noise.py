"""vLLM's known-noise warnings are dropped at the engine's default log level and kept when more is asked
for; other warnings always pass (the filter sits on the handlers of vLLM's logger, so it sees the records
of vLLM's child loggers too). Runs without vLLM: the filter is plain logging."""

from __future__ import annotations

import io
import logging

import pytest

from rtprune.engines.vllm.plugin.noise import KNOWN_NOISE, drop_known_noise


@pytest.fixture
def vllm_log(monkeypatch):
    """vLLM's logger as vLLM sets it up (one stream handler, no propagation), restored afterwards."""
    logger = logging.getLogger("vllm")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    monkeypatch.setattr(logger, "handlers", [handler])
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "level", logging.DEBUG)
    return stream


def _log_all() -> None:
    child = logging.getLogger("vllm.config.model")
    for part in KNOWN_NOISE:
        child.warning("start %s end", part)
    child.warning("KV cache is too small for one page")


def test_known_noise_is_dropped_at_warning_and_real_warnings_pass(vllm_log, monkeypatch):
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "WARNING")
    assert drop_known_noise() and drop_known_noise()  # twice: one filter per handler
    assert len(logging.getLogger("vllm").handlers[0].filters) == 1
    _log_all()
    assert vllm_log.getvalue().splitlines() == ["KV cache is too small for one page"]


@pytest.mark.parametrize("level", ["INFO", "debug"])
def test_nothing_is_dropped_when_more_is_asked_for(vllm_log, monkeypatch, level):
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", level)
    assert not drop_known_noise()
    _log_all()
    assert len(vllm_log.getvalue().splitlines()) == len(KNOWN_NOISE) + 1
