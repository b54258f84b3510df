"""Issue 4 end to end: PDFs on a real S3-compatible server -> local Ray (logical GPUs) -> Parquet on S3."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.compute as pc
import pytest

from pipeline.config import PipelineConfig
from pipeline.samples import (
    corrupt_pdf_bytes,
    empty_pdf_bytes,
    encrypted_pdf_bytes,
    noisy_pdf_bytes,
    sample_pdf_bytes,
)
from pipeline.schema import PAGES_SCHEMA
from pipeline.store.read import read_committed, read_summaries

pytestmark = pytest.mark.ray
pytest.importorskip("rtprune.engines.hf.engine")

from pipeline_fixtures import ENGINE_OVERRIDES, PAGE_POLICY_ONE_ATTEMPT  # noqa: E402

HEALTHY = {"reports/a.pdf": 1, "reports/b.pdf": 2, "reports/deep/c.pdf": 3}
BROKEN = {
    "reports/corrupt.pdf": (corrupt_pdf_bytes(), "cannot open PDF"),
    "reports/encrypted.pdf": (encrypted_pdf_bytes(), "encrypted"),
    "reports/empty.pdf": (empty_pdf_bytes(), "no pages"),
    "reports/oversized.pdf": (noisy_pdf_bytes(), "max_bytes"),
}


@pytest.fixture(scope="module")
def run_result(local_ray, s3_server):
    s3 = s3_server.client()
    s3.create_bucket(Bucket="corpus")
    for i, (key, pages) in enumerate(HEALTHY.items()):
        s3.put_object(Bucket="corpus", Key=key, Body=sample_pdf_bytes(pages, seed=i))
    for key, (data, _) in BROKEN.items():
        s3.put_object(Bucket="corpus", Key=key, Body=data)
    cfg = PipelineConfig.model_validate(
        {
            "input": "s3://corpus/reports/",
            "output": "s3://corpus/out",
            "storage": {
                "endpoint_url": s3_server.endpoint_url,
                "key": s3_server.key,
                "secret": s3_server.secret,
                "region": "us-east-1",
            },
            "render": {"max_bytes": 300_000},
            "engine": ENGINE_OVERRIDES,
            "commit_documents": 3,
            "page_policy": PAGE_POLICY_ONE_ATTEMPT,
            "pools": {
                "render_actors": 2,
                "render_num_cpus": 0.5,
                "ocr_max_actors": 1,
                "ocr_num_gpus": 1,
                "ocr_num_cpus": 0.5,
                "ocr_batch_size": 4,
                "ocr_sub_batch_size": 2,
            },
        }
    )
    from pipeline.driver.run import run_pipeline

    logger = logging.getLogger("pipeline")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        summary = run_pipeline(cfg)
    finally:
        logger.removeHandler(handler)
    storage = cfg.storage
    return cfg, summary, read_committed(cfg.output, storage), read_summaries(cfg.output, storage), records


def test_schema_and_one_row_per_page(run_result):
    _, _, table, _, _ = run_result
    assert table.schema == PAGES_SCHEMA
    for key, pages in HEALTHY.items():
        rows = table.filter(pc.equal(table["source_uri"], f"s3://corpus/{key}")).to_pylist()
        assert sorted(r["page_index"] for r in rows) == list(range(pages))
        assert all(r["status"] == "ok" and r["page_count"] == pages and r["text"] for r in rows)
        assert all(r["gpu_s"] > 0 and r["render_s"] > 0 and r["visual_tokens"] > 0 for r in rows)
    assert table.num_rows == sum(HEALTHY.values()) + len(BROKEN)


def test_broken_documents_become_error_rows_with_reasons(run_result):
    _, _, table, _, _ = run_result
    for key, (_, reason) in BROKEN.items():
        rows = table.filter(pc.equal(table["source_uri"], f"s3://corpus/{key}")).to_pylist()
        assert len(rows) == 1, key
        assert (rows[0]["status"], rows[0]["error_stage"], rows[0]["page_index"]) == ("error", "render", -1)
        assert reason in rows[0]["error"]


def test_costs_add_up_to_the_summary(run_result):
    cfg, summary, table, summaries, _ = run_result
    assert summaries == [summary] and summary.run_id == cfg.run_id
    assert (summary.pages_ok, summary.pages_failed) == (sum(HEALTHY.values()), len(BROKEN))
    assert summary.cost_direct_usd == pytest.approx(sum(table["cost_direct_usd"].to_pylist()))
    assert summary.gpu_s == pytest.approx(sum(table["gpu_s"].to_pylist()))
    assert summary.cost_fully_loaded_usd > 0 and sum(summary.node_seconds.values()) > 0
    assert summary.usd_per_1k_pages_direct == pytest.approx(1000 * summary.cost_direct_usd / summary.pages_ok)
    assert 0 < summary.utilisation == pytest.approx(summary.cost_direct_usd / summary.cost_fully_loaded_usd)


def test_no_credential_in_outputs_summary_or_logs(run_result, s3_server, local_ray):
    cfg, summary, _, _, log_lines = run_result
    s3 = s3_server.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="corpus", Prefix="out/")["Contents"]]
    assert any(k.startswith("out/_ledger/") for k in keys) and any(k.startswith("out/pages/") for k in keys)
    secret = s3_server.secret.encode()
    for key in keys:
        assert secret not in s3.get_object(Bucket="corpus", Key=key)["Body"].read(), key
    assert s3_server.secret not in summary.model_dump_json()
    assert log_lines and not any(s3_server.secret in line for line in log_lines)
    from ray._private.worker import _global_node

    logs = Path(_global_node.get_session_dir_path()) / "logs"
    files = [p for p in logs.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert secret not in path.read_bytes(), path


def test_missing_bucket_stops_the_job(run_result, s3_server):
    from pipeline.driver.run import run_pipeline

    cfg = run_result[0]
    with pytest.raises(FileNotFoundError, match="output bucket not found: s3://no-such-bucket"):
        run_pipeline(cfg.model_copy(update={"output": "s3://no-such-bucket/out"}))
    with pytest.raises(FileNotFoundError, match="input not found"):
        run_pipeline(cfg.model_copy(update={"input": "s3://no-such-bucket/in/", "run_id": "x"}))
