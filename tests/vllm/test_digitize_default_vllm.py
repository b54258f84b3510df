"""`python -m jobs.digitize engine.backend=vllm` and nothing else: the embedded default job (sample PDFs, the
built-in tiny-random-v1) on the vLLM engine, on CPU, as a user with the vLLM environment runs it.

The test harness adds only what a test needs: an empty working directory, a cache folder of its own
(XDG_CACHE_HOME), workers that import this checkout, and vLLM's CPU thread settings for a shared machine."""

from __future__ import annotations

import contextlib
import re

import pyarrow.compute as pc
import pytest
from pipeline_vllm_fixtures import REPO, VLLM_CPU_ENV

from rtprune.api import PruneConfig
from rtprune.engines.vllm.plugin import effective_prune
from rtprune.engines.vllm.tiny_model import TINY_V1

# slow: Ray, the render and OCR actors, and a vLLM engine start; 2-6 minutes on a shared 2-core machine.
pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(exit code, the job's stdout, committed pages, the cache folder) of one default run."""
    import ray

    from pipeline.store.read import read_committed

    work, cache = tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("cache")
    env = {"PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache), **VLLM_CPU_ENV}
    with pytest.MonkeyPatch.context() as mp, contextlib.ExitStack() as stack:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("RAY_ADDRESS", raising=False)
        mp.delenv("VLLM_LOGGING_LEVEL", raising=False)
        mp.chdir(work)
        stack.callback(ray.shutdown)
        from jobs.digitize import main

        out_path = work / "stdout.txt"
        with out_path.open("w") as out, contextlib.redirect_stdout(out):
            rc = main(["engine.backend=vllm"])
    pages = read_committed(str(work / "out"))
    return rc, out_path.read_text(), pages, cache / "rtprune-ocr"


def test_the_default_job_runs_on_vllm(run):
    rc, stdout, pages, _ = run
    assert rc == 0, stdout
    ok = pages.filter(pc.equal(pages["status"], "ok"))
    assert ok.num_rows == pages.num_rows > 0, stdout


def test_pages_carry_the_vllm_engine_identity(run):
    """The tiny model's name, and the hash of the pruning vLLM runs (the pixel count rule), which the
    transformers engine's default rule does not have."""
    pages = run[2]
    vllm_hash = effective_prune(PruneConfig()).config_hash()
    assert vllm_hash != PruneConfig().config_hash()
    assert set(pages["model_id"].to_pylist()) == {TINY_V1}
    assert set(pages["prune_config_hash"].to_pylist()) == {vllm_hash}
    assert all(r["visual_tokens_kept"] < r["visual_tokens"] for r in pages.to_pylist())


def test_the_model_folder_was_made_once_in_the_cache(run):
    cache = run[3]
    (folder,) = list(cache.iterdir())
    assert folder.name.startswith(f"{TINY_V1}-vllm-") and (folder / "model.safetensors").is_file()


def test_vllm_info_lines_and_known_noise_stay_out_of_the_jobs_output(run):
    from rtprune.engines.vllm.plugin.noise import KNOWN_NOISE

    stdout = run[1]
    assert "documents" in stdout  # the job's own summary is there
    assert not re.search(r"\bINFO \d\d-\d\d \d\d:\d\d:\d\d", stdout), stdout[-3000:]
    noise = [line for line in stdout.splitlines() if any(part in line for part in KNOWN_NOISE)]
    # The plugin's filter holds in vLLM's engine processes. The actor's own vLLM front end sets its logging
    # up again when it builds the engine, after the filter went in, so its few start-up lines still show.
    assert not [line for line in noise if "(EngineCore" in line or "(Worker" in line], noise
