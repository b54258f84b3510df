"""What routing saved, as the run summary, the console and the cost report show it: pages routed, GPU
seconds avoided (routed pages x the mean GPU seconds of an OCR'd page) and $ per 1,000 pages with and
without routing."""

from __future__ import annotations

import math

import pytest

from pipeline.config import PipelineConfig
from pipeline.cost.accounting import RunInfo, price_pages, summarize
from pipeline.cost.pricing import load_pricing
from pipeline.cost.report import build_tables
from pipeline.cost.report_text import format_text
from pipeline.cost.routing_savings import RoutingSavings, routing_savings
from pipeline.driver.commit import SUMMARY_COLUMNS
from pipeline.driver.progress import ProgressCounter, format_progress
from pipeline.stages.routed_render import TEXT_SOURCE_ROUTED
from pipeline.stages.rows import RunStamp, new_row, to_table
from rtprune.engines.contract import EngineIdentity

PRICING = load_pricing()
STAMP = RunStamp("r1", EngineIdentity("m", "tiny", "rtprune", "h"))
OUT = PipelineConfig(input="in", output="out")
INFO = RunInfo("r1", "2025-01-01T00:00:00+00:00", "2025-01-01T00:01:00+00:00", 60.0, STAMP.identity)


def _rows(ocr_gpu_s: list[float], routed: int) -> list[dict]:
    """OCR'd pages with these GPU seconds (in the decode phase), then `routed` pages routed to their layer."""
    doc = {"doc_id": "d", "source_uri": "s3://b/d.pdf", "content_hash": "c"}
    n = len(ocr_gpu_s) + routed
    rows = [
        new_row(STAMP, doc, i, n)
        | {"text": "t", "decode_s": s, "gpu_s": s, "render_s": 0.2, "ocr_attempts": 1, "route": "ocr"}
        for i, s in enumerate(ocr_gpu_s)
    ]
    rows += [
        new_row(STAMP, doc, len(ocr_gpu_s) + i, n)
        | {"text": "# t", "render_s": 0.01, "route": "text_layer", "text_source": TEXT_SOURCE_ROUTED}
        for i in range(routed)
    ]
    return rows


def test_the_estimate_is_routed_pages_times_the_mean_ocr_page():
    saved = routing_savings(to_table(_rows([1.0, 3.0], routed=6)), gpu_usd_per_s=0.5)
    assert (saved.pages_routed, saved.pages_ocr) == (6, 2)
    assert saved.gpu_s_avoided == pytest.approx(6 * 2.0) and saved.usd_avoided == pytest.approx(6 * 2.0 * 0.5)
    assert math.isnan(RoutingSavings(pages_routed=3).gpu_s_avoided)  # nothing OCR'd to estimate from
    assert RoutingSavings(pages_ocr=3, gpu_s_ocr=1.0).gpu_s_avoided == 0.0  # nothing routed


def test_the_summary_shows_routing_and_the_cost_without_it():
    table = price_pages(to_table(_rows([1.0, 3.0], routed=6)), PRICING).select(SUMMARY_COLUMNS)
    s = summarize(table, INFO, {}, PRICING)
    assert (s.pages_ok, s.pages_routed, s.pages_ocr, s.gpu_s) == (8, 6, 2, pytest.approx(4.0))
    assert s.gpu_s_avoided_estimate == pytest.approx(12.0)
    extra = 12.0 * PRICING.gpu_usd_per_s
    assert s.usd_per_1k_pages_direct_without_routing == pytest.approx(1000 * (s.cost_direct_usd + extra) / 8)
    assert s.usd_per_1k_pages_direct_without_routing > s.usd_per_1k_pages_direct


def test_a_run_without_routing_costs_the_same_either_way_and_one_without_ocr_has_no_estimate():
    off = summarize(price_pages(to_table(_rows([1.0], routed=0)), PRICING), INFO, {}, PRICING)
    assert (off.pages_routed, off.gpu_s_avoided_estimate) == (0, 0.0)
    assert off.usd_per_1k_pages_direct_without_routing == pytest.approx(off.usd_per_1k_pages_direct)
    only = summarize(price_pages(to_table(_rows([], routed=2)), PRICING), INFO, {}, PRICING)
    assert only.pages_routed == 2 and only.gpu_s == 0.0
    assert only.gpu_s_avoided_estimate is None and only.usd_per_1k_pages_direct_without_routing is None


def test_the_digitize_job_prints_the_routing_lines():
    from jobs.digitize import human_summary

    s = summarize(price_pages(to_table(_rows([1.0, 3.0], routed=6)), PRICING), INFO, {}, PRICING)
    text = human_summary(s, OUT)
    assert "routing: 6 pages took their own text layer (no GPU), 2 went to OCR" in text
    assert "GPU seconds avoided: about 12.0 (estimate: 6 routed pages x 2.000" in text
    assert f"without: about ${s.usd_per_1k_pages_direct_without_routing:.4f} (estimate" in text
    off = summarize(price_pages(to_table(_rows([1.0], routed=0)), PRICING), INFO, {}, PRICING)
    assert "routing" not in human_summary(off, OUT)


def test_the_progress_line_counts_routed_pages_and_gpu_seconds_avoided():
    counter = ProgressCounter(documents_total=2, started_s=0.0)
    counter.add(3, 0, 0, RoutingSavings(pages_routed=3))
    assert "3 routed, ? GPU-s avoided" in format_progress(counter.snapshot(10.0))  # none OCR'd yet
    counter.add(2, 1, 1, RoutingSavings(pages_ocr=2, gpu_s_ocr=3.0))
    line = format_progress(counter.snapshot(10.0))
    assert "pages 5 (1 failed, 3 routed, ~4.5 GPU-s avoided)" in line
    plain = ProgressCounter(1, 0.0)
    plain.add(2, 0, 1, RoutingSavings(pages_ocr=2, gpu_s_ocr=3.0))
    assert "routed" not in format_progress(plain.snapshot(10.0))


def test_the_cost_report_adds_routing_columns_only_where_pages_were_routed():
    routed = price_pages(to_table(_rows([1.0, 3.0], routed=6)), PRICING)
    total = build_tables(routed, [], [["run"]])[0].total
    assert (total.pages_routed, total.gpu_s_avoided) == (6, pytest.approx(12.0))
    cost_without = total.cost_direct_usd + 12.0 * PRICING.gpu_usd_per_s
    assert total.usd_per_1k_pages_direct_without_routing == pytest.approx(1000 * cost_without / 8)
    header = format_text(build_tables(routed, [], [["run"]])[0]).splitlines()[0]
    assert "routed" in header and "~$/1k no routing" in header and "~GPU-h avoided" in header
    gpu = PRICING.node_types[PRICING.gpu_node_type]
    dearer = PRICING.model_copy(
        update={
            "node_types": {
                **PRICING.node_types,
                PRICING.gpu_node_type: gpu.model_copy(update={"usd_per_hour": 2 * gpu.usd_per_hour}),
            }
        }
    )
    repriced = build_tables(routed, [], [["run"]], dearer)[0].total
    assert (
        repriced.cost_avoided_usd == pytest.approx(12.0 * dearer.gpu_usd_per_s) == 2 * total.cost_avoided_usd
    )
    plain = price_pages(to_table(_rows([1.0, 3.0], routed=0)), PRICING)
    assert "routed" not in format_text(build_tables(plain, [], [["run"]])[0]).splitlines()[0]
