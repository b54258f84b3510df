"""Shared tiny-random backends and one local Ray: building either costs seconds, so tests that only use
them share them."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image


def _noise_page(width_px: int, height_px: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height_px, width_px, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="session")
def noise_page():
    """noise_page(width_px, height_px, seed) -> a random RGB page: distinct pages give distinct visual
    features, so tests that compare outputs can fail."""
    return _noise_page


@pytest.fixture(scope="session")
def tiny_v2():
    """A shared DeepseekOcr2Backend with tiny random weights. Do not modify it in a test."""
    from rtprune.models.deepseek_v2 import DeepseekOcr2Backend

    return DeepseekOcr2Backend.tiny_random(seed=0)


@pytest.fixture(scope="session")
def tiny_v1():
    """A shared DeepseekOcrV1Backend (gundam mode: newlines, padding and crops) with tiny random weights."""
    from rtprune.models.deepseek_v1 import DeepseekOcrV1Backend

    return DeepseekOcrV1Backend.tiny_random(mode="gundam", seed=0)


@pytest.fixture(scope="session")
def session_ray():
    """One local Ray with 8 logical CPUs and 2 logical GPUs for the whole session (a start costs seconds of
    CPU on a small machine); workers import this checkout. Tests take it through the `local_ray` fixture
    (tests/pipeline/pipeline_fixtures.py) or reliability's pipeline_harness.local_ray(). A pipeline run
    leaves nothing behind in it: its actors end with the run."""
    pytest.importorskip("ray")
    from pipeline.driver.local_ray import init_local_ray

    ray = init_local_ray(
        address="local",
        num_cpus=8,
        num_gpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", os.getcwd())}},
    )
    yield ray
    ray.shutdown()
