"""Routing end to end on a real S3-compatible server (moto): born-digital, scanned and mixed documents,
routed per page; every page once, routed rows without OCR usage, OCR'd rows with it, and a rerun that
processes nothing."""

from __future__ import annotations

from collections import Counter

import pyarrow.compute as pc
import pytest

from pipeline.config import PipelineConfig
from pipeline.samples import sample_pdf_bytes, scanned_pdf_bytes
from pipeline.schema import PAGES_SCHEMA
from pipeline.stages.routed_render import TEXT_SOURCE_ROUTED
from pipeline.store.read import read_committed

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.ci,
]  # a minute or more: CI runs it (-m "slow and ci")
pytest.importorskip("rtprune.engines.hf.engine")
pymupdf = pytest.importorskip("pymupdf")

from pipeline_fixtures import ENGINE_OVERRIDES, PAGE_POLICY_ONE_ATTEMPT, SMALL_POOLS  # noqa: E402

USAGE = ("gpu_s", "encode_s", "prefill_s", "decode_s", "visual_tokens", "prompt_tokens", "output_tokens")


def _mixed() -> bytes:
    doc = pymupdf.open(stream=sample_pdf_bytes(1, seed=4), filetype="pdf")
    doc.insert_pdf(pymupdf.open(stream=scanned_pdf_bytes(1, seed=5), filetype="pdf"))
    return doc.tobytes()


# key -> (bytes, route of each page)
DOCS = {
    "in/born.pdf": (sample_pdf_bytes(2, seed=1), ["text_layer", "text_layer"]),
    "in/scan.pdf": (scanned_pdf_bytes(1, seed=2), ["ocr"]),
    "in/mixed.pdf": (_mixed(), ["text_layer", "ocr"]),
}


def _cfg(s3_server, run_id: str) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "input": "s3://routed/in/",
            "output": "s3://routed/out",
            "run_id": run_id,
            "storage": {
                "endpoint_url": s3_server.endpoint_url,
                "key": s3_server.key,
                "secret": s3_server.secret,
                "region": "us-east-1",
            },
            "routing": {"mode": "text_layer"},
            "engine": ENGINE_OVERRIDES,
            "page_policy": PAGE_POLICY_ONE_ATTEMPT,
            "pools": SMALL_POOLS,
        }
    )


@pytest.fixture(scope="module")
def routed_run(local_ray, s3_server):
    from pipeline.driver.run import run_pipeline

    s3 = s3_server.client()
    s3.create_bucket(Bucket="routed")
    for key, (data, _) in DOCS.items():
        s3.put_object(Bucket="routed", Key=key, Body=data)
    summary = run_pipeline(_cfg(s3_server, "first"))
    cfg = _cfg(s3_server, "again")
    return summary, run_pipeline(cfg), read_committed(cfg.output, cfg.storage)


def test_every_page_once_on_its_route(routed_run):
    _, _, table = routed_run
    assert table.schema == PAGES_SCHEMA
    got = Counter(
        zip(
            table["source_uri"].to_pylist(),
            table["page_index"].to_pylist(),
            table["route"].to_pylist(),
            strict=True,
        )
    )
    expected = Counter(
        {
            (f"s3://routed/{key}", i, route): 1
            for key, (_, routes) in DOCS.items()
            for i, route in enumerate(routes)
        }
    )
    assert got == expected and set(table["status"].to_pylist()) == {"ok"}


def test_routed_rows_carry_no_ocr_usage_and_ocr_rows_do(routed_run):
    _, _, table = routed_run
    for row in table.filter(pc.equal(table["route"], "text_layer")).to_pylist():
        assert all(row[c] == 0 for c in USAGE) and row["ocr_attempts"] == 0, row["source_uri"]
        assert row["text_source"] == TEXT_SOURCE_ROUTED and row["text"] and row["cpu_s"] > 0
    for row in table.filter(pc.equal(table["route"], "ocr")).to_pylist():
        assert row["gpu_s"] > 0 and row["visual_tokens"] > 0 and row["ocr_attempts"] == 1
        assert row["text_source"] == "ocr" and row["route_reason"] == "no_text_layer"


def test_the_summary_counts_both_routes_and_a_rerun_does_nothing(routed_run):
    first, again, table = routed_run
    assert (first.documents, first.pages_ok, first.pages_routed, first.pages_ocr) == (3, 5, 3, 2)
    assert first.gpu_s == pytest.approx(sum(table["gpu_s"].to_pylist()))
    assert first.gpu_s_avoided_estimate == pytest.approx(3 * first.gpu_s / 2)
    assert (again.documents, again.pages_ok, again.pages_failed) == (0, 0, 0)
    assert set(table["run_id"].to_pylist()) == {"first"}
