"""infra/jobs/nightly-s3.yaml: a config the digitize job accepts, sized to the clusters in infra/."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import PipelineConfig
from rtprune.engines.contract import EngineConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def nightly() -> dict:
    return yaml.safe_load((ROOT / "infra" / "jobs" / "nightly-s3.yaml").read_text())


def test_engine_section_is_a_valid_engine_config(nightly):
    engine = EngineConfig.model_validate(nightly["engine"])
    assert engine.model == "deepseek-ai/DeepSeek-OCR" and engine.prune.method == "rtprune"


def test_whole_file_is_a_valid_pipeline_config(nightly):
    parsed = PipelineConfig.model_validate(nightly)
    assert parsed.input.startswith("s3://") and parsed.output.startswith("s3://")


def _k8s_groups() -> list[dict]:
    cluster = yaml.safe_load((ROOT / "infra" / "k8s" / "raycluster.yaml").read_text())
    return cluster["spec"]["workerGroupSpecs"]


def test_ocr_pool_fits_the_gpu_workers_of_both_clusters(nightly):
    pools = nightly["pools"]
    aws = yaml.safe_load((ROOT / "infra" / "cluster" / "aws.yaml").read_text())
    aws_gpus = sum(
        t["max_workers"] * t["resources"].get("GPU", 0)
        for t in aws["available_node_types"].values()
        if "max_workers" in t
    )
    k8s_gpus = sum(g["maxReplicas"] * int(g["rayStartParams"].get("num-gpus", 0)) for g in _k8s_groups())
    # More OCR actors than GPUs the autoscaler may add would wait forever for a GPU.
    assert pools["ocr_max_actors"] * pools["ocr_num_gpus"] <= min(aws_gpus, k8s_gpus)
    assert 1 <= pools["ocr_min_actors"] <= pools["ocr_initial_actors"] <= pools["ocr_max_actors"]


def test_render_actors_fit_the_cpu_workers(nightly):
    pools = nightly["pools"]
    k8s_cpus = sum(
        g["maxReplicas"] * int(g["rayStartParams"]["num-cpus"])
        for g in _k8s_groups()
        if "num-gpus" not in g["rayStartParams"]
    )
    assert pools["render_actors"] * pools["render_num_cpus"] <= k8s_cpus


def test_nightly_runs_the_vllm_engine_with_enough_batches_to_fill_it(nightly):
    parsed = PipelineConfig.model_validate(nightly)
    assert parsed.engine.backend == "vllm"  # "auto" would resolve on the GPU-less head to hf
    p = parsed.pools
    # Batches in flight must hold the engine's pages plus one batch arriving and one leaving.
    assert p.ocr_batches_in_flight * p.ocr_batch_size >= p.ocr_vllm.max_num_seqs + 2 * p.ocr_batch_size
    assert 0.5 <= p.ocr_vllm.gpu_memory_utilization <= 0.95 and p.ocr_max_task_retries >= 1
    assert p.ocr_vllm.kv_cache_gib is None  # on GPUs vLLM sizes the cache from gpu_memory_utilization
