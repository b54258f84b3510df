"""The digitize job with engine.backend=vllm, end to end on CPU: PDFs on a real S3-compatible server (moto)
-> local Ray (logical GPUs) -> render actors -> an async OCR actor holding vLLM's engine (CPU build, the
tiny v1 fixture made vLLM-loadable) -> committed Parquet on S3; the cost report reads it; a second run
processes nothing."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest
from pipeline_vllm_fixtures import (
    FIXTURE,
    engine_section,
    local_ray,
    model_dir,
    pools_section,
    rows_by_page,
    strip_pdf_bytes,
)

from pipeline.samples import corrupt_pdf_bytes, sample_pdf_bytes
from pipeline.schema import PAGES_SCHEMA
from pipeline.stages.gpu_share import PHASES

# slow: Ray, two actor pools and a vLLM engine start; 2-6 minutes on a shared 2-core machine.
pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.skipif(not (FIXTURE / "model.safetensors").is_file(), reason="v1 fixture not found"),
]

HEALTHY = {"in/a.pdf": 1, "in/b.pdf": 2, "in/deep/c.pdf": 3, "in/d.pdf": 2}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from pipeline.config import PipelineConfig
    from pipeline.driver.run import run_pipeline
    from pipeline.store.read import read_committed, read_summaries
    from tests.reliability.s3_server import MotoS3

    folder = model_dir(tmp_path_factory.mktemp("model"))
    with MotoS3() as s3, local_ray() as ray_run:
        access = s3.access
        client = access.client()
        s3.make_bucket("vllm-corpus")
        for i, (key, pages) in enumerate(HEALTHY.items()):
            client.put_object(Bucket="vllm-corpus", Key=key, Body=sample_pdf_bytes(pages, seed=i))
        client.put_object(Bucket="vllm-corpus", Key="in/strip.pdf", Body=strip_pdf_bytes())
        client.put_object(Bucket="vllm-corpus", Key="in/corrupt.pdf", Body=corrupt_pdf_bytes())
        cfg = PipelineConfig.model_validate(
            {
                "input": "s3://vllm-corpus/in/",
                "output": "s3://vllm-corpus/out",
                "storage": {
                    "endpoint_url": access.endpoint_url,
                    "key": access.key,
                    "secret": access.secret,
                    "region": "us-east-1",
                },
                "engine": engine_section(folder),
                "pools": pools_section(),
                "commit_documents": 2,
                "node_sample_interval_s": 1.0,
            }
        )
        first = run_pipeline(cfg)
        second = run_pipeline(cfg.model_copy(update={"run_id": cfg.run_id + "-again"}))
        opts = cfg.storage.fsspec_options()
        pages = read_committed(cfg.output, opts, latest_only=False)
        summaries = read_summaries(cfg.output, opts)
    return cfg, first, second, pages, summaries, ray_run


def test_every_page_exactly_once_with_text(runs):
    _, first, _, pages, _, _ = runs
    assert pages.schema == PAGES_SCHEMA
    by_page = rows_by_page(pages)
    assert all(len(rows) == 1 for rows in by_page.values()), [k for k, v in by_page.items() if len(v) > 1]
    for key, count in HEALTHY.items():
        uri = f"s3://vllm-corpus/{key}"
        assert sorted(i for (u, i) in by_page if u == uri) == list(range(count))
        assert all(by_page[(uri, i)][0]["status"] == "ok" for i in range(count))
    assert pages.num_rows == sum(HEALTHY.values()) + 2
    assert (first.pages_ok, first.pages_failed) == (sum(HEALTHY.values()), 2)


def test_refused_and_broken_documents_are_error_rows_with_reasons(runs):
    by_page = rows_by_page(runs[3])
    (strip,) = by_page[("s3://vllm-corpus/in/strip.pdf", 0)]
    assert (strip["status"], strip["error_stage"]) == ("error", "ocr") and "aspect ratio" in strip["error"]
    (corrupt,) = by_page[("s3://vllm-corpus/in/corrupt.pdf", -1)]
    assert (corrupt["status"], corrupt["error_stage"]) == ("error", "render")


def test_usage_and_cost_columns_are_filled(runs):
    cfg, _, _, pages, _, _ = runs
    ok = pages.filter(pc.equal(pages["status"], "ok")).to_pylist()
    for r in ok:
        assert r["model_id"] == cfg.engine.model and r["model_mode"] == "tiny" and r["text"]
        assert r["visual_tokens"] > r["visual_tokens_kept"] > 0 and r["output_tokens"] > 0  # pruned in vLLM
        assert r["prompt_tokens"] > r["visual_tokens_kept"] and r["render_s"] > 0
        assert r["gpu_s"] > 0 and r["gpu_s"] == pytest.approx(sum(r[p] for p in PHASES))
        assert r["cost_direct_usd"] == pytest.approx(
            r["gpu_s"] * r["gpu_usd_per_s"] + r["cpu_s"] * r["cpu_usd_per_s"]
        )
        assert r["cost_direct_usd"] > 0 and r["pricing_name"] and r["gpu_node_type"]


def test_gpu_seconds_fit_inside_the_run(runs):
    """One engine: the pages' shares add up to its busy time, which cannot exceed the run's wall time."""
    _, first, _, pages, _, _ = runs
    gpu_s = sum(pages["gpu_s"].to_pylist())
    assert gpu_s == pytest.approx(first.gpu_s) and 0 < gpu_s < first.wall_s


def test_the_cost_report_reads_the_run(runs, tmp_path):
    from jobs.cost_report import CostReportConfig, report

    cfg, first, _, pages, summaries, _ = runs
    (table,) = report(CostReportConfig(output=cfg.output, by="run", out_dir=tmp_path), pages, summaries)
    (row,) = [r for r in table.rows if r.group == cfg.run_id]
    assert (row.pages_ok, row.pages_failed) == (first.pages_ok, first.pages_failed)
    assert row.cost_direct_usd == pytest.approx(first.cost_direct_usd) and row.gpu_s == pytest.approx(
        first.gpu_s
    )
    assert row.cost_fully_loaded_usd == pytest.approx(first.cost_fully_loaded_usd)
    assert row.cost_fully_loaded_usd > row.cost_direct_usd > 0


def test_a_second_run_processes_nothing(runs):
    _, first, second, pages, summaries, _ = runs
    assert (second.documents, second.pages_ok, second.pages_failed) == (0, 0, 0)
    assert set(pages["run_id"].to_pylist()) == {first.run_id}
    assert {s.run_id for s in summaries} == {first.run_id, second.run_id}


def test_the_engine_ends_quietly_and_nothing_outlives_ray(runs):
    """At the end of a run Ray Data drops the OCR actor, which closes its engine: no engine death is logged
    and nothing fails at interpreter exit, and once Ray has shut down no process of the run is left.
    Known noise left (docs/pipeline.md): multiprocessing's resource tracker, ended by Ray before the actor's
    interpreter exits, prints KeyError tracebacks for the shared memory vLLM leaves to exit."""
    ray_run = runs[-1]
    logs = ray_run.actor_logs("VllmOcrStage")
    assert "[shutdown] MPClient: complete" in logs  # the actor's log was found, and the engine was closed
    for sign in ("EngineDeadError", "output_handler failed", "Exception ignored"):
        assert sign not in logs, sign
    tracebacks = logs.split("Traceback (most recent call last):")[1:]
    assert all("multiprocessing/resource_tracker.py" in t.splitlines()[1] for t in tracebacks), tracebacks
    assert ray_run.leftovers == []
