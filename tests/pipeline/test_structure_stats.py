"""Layout counts per run (summary) and per slice (cost report), old parts and summaries still readable, and
the page size the render stage now carries."""

from __future__ import annotations

import json

from pipeline.config import RenderConfig
from pipeline.cost.accounting import RunInfo, price_pages, summarize
from pipeline.cost.pricing import load_pricing
from pipeline.cost.report import build_tables
from pipeline.cost.report_text import format_text
from pipeline.driver.commit import SUMMARY_COLUMNS
from pipeline.schema import PAGES_SCHEMA, conform
from pipeline.stages.rasterizer import render_pdf
from pipeline.stages.rows import RunStamp, new_row, to_table
from pipeline.summary import RunSummary
from rtprune.engines.contract import EngineIdentity

PRICING = load_pricing()
IDENTITY = EngineIdentity("m", "gundam", "none", "")
LAYOUT = ["width_pt", "height_pt", "markdown", "blocks", "layout_parsed", "layout_truncated", "layout_flags"]


def _pages():
    stamp = RunStamp("r", IDENTITY)
    doc = {"doc_id": "d", "source_uri": "s3://b/d.pdf", "content_hash": "e"}
    counts = [(2, 1, 0, True), (0, 3, 2, True), (0, 0, 0, False)]  # tables, formulas, figures, parsed
    rows = [
        new_row(stamp, doc, i, 3)
        | {"text": "t", "n_tables": t, "n_formulas": f, "n_figures": g, "layout_parsed": p}
        for i, (t, f, g, p) in enumerate(counts)
    ]
    return price_pages(to_table(rows), PRICING)


def test_the_summary_counts_tables_formulas_figures_and_parsed_pages():
    info = RunInfo("r", "2025-01-01T00:00:00+00:00", "2025-01-01T00:01:00+00:00", 60.0, IDENTITY)
    summary = summarize(_pages().select(SUMMARY_COLUMNS), info, {}, PRICING)
    assert (summary.tables, summary.formulas, summary.figures, summary.pages_layout_parsed) == (2, 4, 2, 2)


def test_a_summary_written_before_layouts_still_reads():
    info = RunInfo("r", "2025-01-01T00:00:00+00:00", "2025-01-01T00:01:00+00:00", 60.0, IDENTITY)
    stored = json.loads(summarize(_pages().select(SUMMARY_COLUMNS), info, {}, PRICING).model_dump_json())
    for key in ("tables", "formulas", "figures", "pages_layout_parsed"):
        del stored[key]
    old = RunSummary.model_validate(stored)
    assert (old.tables, old.formulas, old.figures, old.pages_layout_parsed) == (0, 0, 0, 0)


def test_the_cost_report_sums_them_per_slice_and_shows_them():
    table = build_tables(_pages(), [], [["run"]])[0]
    assert (table.total.tables, table.total.formulas, table.total.figures) == (2, 4, 2)
    header = format_text(table).splitlines()[0]
    assert "tables" in header and "formulas" in header and "figures" in header
    old = build_tables(_pages().drop_columns(["n_tables", "n_formulas", "n_figures"]), [], [["run"]])[0]
    assert (old.total.tables, old.total.pages_ok) == (0, 3)  # a table from before the layout counts 0


def test_an_old_part_reads_with_its_text_as_markdown_and_no_layout():
    pages = _pages()
    old = pages.drop_columns(LAYOUT + ["n_tables", "n_formulas", "n_figures"])
    read = conform(old)
    assert read.schema == PAGES_SCHEMA
    row = read.to_pylist()[0]
    assert (row["markdown"], row["blocks"], row["layout_parsed"], row["n_figures"]) == ("t", [], False, 0)
    assert (row["width_pt"], row["height_pt"]) == (0.0, 0.0)


def test_a_rotated_page_carries_its_displayed_size_in_points():
    import pymupdf

    doc = pymupdf.open()
    doc.new_page(width=600, height=400).set_rotation(90)
    page = render_pdf(doc.tobytes(), RenderConfig()).pages[0]
    assert (page.width_pt, page.height_pt) == (400, 600)  # the frame is the page as displayed
    assert (page.width_px, page.height_px) == (800, 1200)
