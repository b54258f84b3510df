"""The closing lines of a digitize run name the output as configured: an s3:// output keeps its scheme
(it is not a local path), and a signature in its query never shows (credentials in a URI are refused
earlier, by the config: tests/pipeline/test_config_guards.py)."""

from __future__ import annotations

import pytest

from jobs.digitize import human_summary
from pipeline.config import PipelineConfig
from pipeline.summary import RunSummary

SUMMARY = RunSummary(
    run_id="run-7",
    started_at="2025-01-01T00:00:00+00:00",
    finished_at="2025-01-01T00:01:00+00:00",
    wall_s=60.0,
    documents=2,
    pages_ok=3,
    pages_failed=0,
    visual_tokens=0,
    visual_tokens_kept=0,
    gpu_s=0.0,
    cpu_s=0.0,
    model_id="m",
    model_mode="tiny",
    prune_method="none",
    prune_config_hash="h",
    pricing_name="p",
    cost_direct_usd=0.0,
    cost_fully_loaded_usd=0.0,
    usd_per_1k_pages_direct=0.0,
    usd_per_1k_pages_fully_loaded=0.0,
    utilisation=0.0,
)


@pytest.mark.parametrize(
    ("output", "shown"),
    [
        ("s3://bucket/ocr/", "s3://bucket/ocr"),
        ("s3://bucket/ocr", "s3://bucket/ocr"),
        ("gs://bucket/a/b", "gs://bucket/a/b"),
        ("https://host:9000/b/out?X-Amz-Signature=abc", "https://host:9000/b/out"),
        ("out", "out"),
        ("/data/ocr/", "/data/ocr"),
    ],
)
def test_summary_prints_the_output_uri_as_given(output, shown):
    text = human_summary(SUMMARY, PipelineConfig(input="in", output=output))
    assert f"output: {shown}/pages/run-7/ " in text
    assert f"summary: {shown}/runs/run-7/summary.json" in text
    assert "abc" not in text
