"""Rendering with the page router: text-layer pages leave as Markdown without an image, the rest are
rasterized as before; the decision, its reason, the features and the time shares reach the page rows."""

from __future__ import annotations

import functools
from dataclasses import fields

import pyarrow as pa
import pytest

from pipeline.config import RenderConfig
from pipeline.routing_config import RoutingConfig
from pipeline.samples import sample_pdf_bytes, scanned_pdf_bytes
from pipeline.schema import FEATURE_COLUMNS, FEATURE_PREFIX, PAGES_SCHEMA, conform
from pipeline.stages.isolation import IsolatedRenderer
from pipeline.stages.page_features import PageFeatures
from pipeline.stages.rasterizer import RenderedPage, render_pdf
from pipeline.stages.render import render_document, render_function, time_shares
from pipeline.stages.routed_render import (
    FEATURES_FAILED,
    TEXT_SOURCE_ROUTED,
    LayerRead,
    decide,
    render_routed_pdf,
)
from pipeline.stages.routing import DOCUMENT_OCR, NO_TEXT_LAYER, OCR_MODE, TEXT_LAYER_GOOD
from pipeline.stages.rows import RunStamp, to_table
from rtprune.engines.contract import EngineIdentity

pymupdf = pytest.importorskip("pymupdf")

ON = RoutingConfig(mode="text_layer")
STAMP = RunStamp("r", EngineIdentity("m", "tiny", "rtprune", "h"))


@functools.cache
def mixed_pdf() -> bytes:
    """Two born-digital pages, then one scanned page (an image, no text layer)."""
    doc = pymupdf.open(stream=sample_pdf_bytes(2, seed=1), filetype="pdf")
    doc.insert_pdf(pymupdf.open(stream=scanned_pdf_bytes(1, seed=2), filetype="pdf"))
    return doc.tobytes()


def test_text_layer_pages_leave_as_markdown_without_an_image():
    out = render_routed_pdf(mixed_pdf(), RenderConfig(), ON)
    assert out.page_count == 3 and not out.error
    born, scan = out.pages[:2], out.pages[2]
    for page in born:
        assert (page.route, page.route_reason) == ("text_layer", TEXT_LAYER_GOOD)
        assert (page.data, page.width_px, page.height_px) == (b"", 0, 0)
        assert page.markdown.startswith("# Section") and page.features.chars > 100
        assert page.text_layer.startswith("Section") and 0 < page.route_s == page.work_s
    assert (scan.route, scan.route_reason) == ("ocr", NO_TEXT_LAYER)
    assert scan.data.startswith(b"\x89PNG") and scan.width_px > 0 and scan.markdown == ""
    assert scan.features.chars == 0 and scan.features.image_cover > 0.9
    assert 0 < scan.route_s < scan.work_s  # the pixmap is in its work, not in the router's


def test_the_ocr_pages_render_as_without_routing():
    plain = render_pdf(mixed_pdf(), RenderConfig()).pages[2]
    routed = render_routed_pdf(mixed_pdf(), RenderConfig(), ON).pages[2]
    assert (routed.data, routed.width_px, routed.dpi) == (plain.data, plain.width_px, plain.dpi)


def test_per_document_sends_a_mixed_document_to_ocr_as_a_whole():
    out = render_routed_pdf(mixed_pdf(), RenderConfig(), RoutingConfig(mode="text_layer", per_document=True))
    assert [(p.route, p.route_reason) for p in out.pages] == [
        ("ocr", DOCUMENT_OCR),
        ("ocr", DOCUMENT_OCR),
        ("ocr", NO_TEXT_LAYER),
    ]
    assert all(p.data for p in out.pages)
    share = RoutingConfig(mode="text_layer", per_document=True, document_text_share=0.6)
    assert [p.route for p in render_routed_pdf(mixed_pdf(), RenderConfig(), share).pages] == [
        "text_layer",
        "text_layer",
        "ocr",
    ]


def _read(features: PageFeatures | None) -> LayerRead:
    return LayerRead(features, "text", "text", 0.001, "" if features else "broken font")


def test_a_page_whose_layer_cannot_be_read_goes_to_ocr_and_counts_against_its_document():
    good = render_routed_pdf(mixed_pdf(), RenderConfig(), ON).pages[0].features
    decisions = decide([_read(good), _read(None)], ON)
    assert [(d.route, d.reason) for d in decisions] == [
        ("text_layer", TEXT_LAYER_GOOD),
        ("ocr", FEATURES_FAILED),
    ]
    half = RoutingConfig(mode="text_layer", per_document=True, document_text_share=0.6)
    assert [d.reason for d in decide([_read(good), _read(None)], half)] == [DOCUMENT_OCR, FEATURES_FAILED]


def test_routing_off_renders_as_before():
    assert render_function(RoutingConfig()) is render_pdf
    page = render_pdf(mixed_pdf(), RenderConfig()).pages[0]
    assert (page.route, page.route_reason, page.features, page.work_s) == ("ocr", OCR_MODE, None, 0.0)


def test_time_is_shared_by_measured_work_or_evenly():
    def page(work_s: float) -> RenderedPage:
        return RenderedPage(0, 0, b"", 0.0, work_s=work_s)

    assert time_shares([page(0.01), page(0.03)], 2.0) == pytest.approx([0.5, 1.5])
    assert time_shares([page(0.0), page(0.03)], 2.0) == [1.0, 1.0]


def _doc(tmp_path) -> dict:
    path = tmp_path / "mixed.pdf"
    path.write_bytes(mixed_pdf())
    return {
        "doc_id": "d",
        "uri": str(path),
        "source_uri": str(path),
        "content_hash": "c",
        "size_bytes": path.stat().st_size,
    }


def test_rows_of_a_routed_document(tmp_path):
    from pipeline.config import StorageConfig

    renderer = IsolatedRenderer(RenderConfig(), render_function(ON))
    try:
        rows = render_document(_doc(tmp_path), renderer, StorageConfig(), STAMP, RenderConfig())
    finally:
        renderer.close()
    born, scan = rows[:2], rows[2]
    for row in born:
        assert (row["status"], row["route"], row["route_reason"]) == ("ok", "text_layer", TEXT_LAYER_GOOD)
        assert row["text"].startswith("# Section") and row["text_source"] == TEXT_SOURCE_ROUTED
        assert (row["image"], row["gpu_s"], row["ocr_attempts"], row["visual_tokens"]) == (b"", 0.0, 0, 0)
        assert row["cpu_s"] == row["render_s"] > 0 and row["feat_chars"] > 100 and row["route_s"] > 0
    assert (scan["route"], scan["text"], scan["text_source"]) == ("ocr", "", "")
    assert scan["image"] and scan["feat_image_cover"] > 0.9 and scan["feat_chars"] == 0
    table = to_table(rows)  # every column typed as the schema says
    assert table.column("feat_words").type == pa.int32() and table.num_rows == 3


def test_feature_columns_are_the_routers_features():
    assert [FEATURE_PREFIX + f.name for f in fields(PageFeatures)] == FEATURE_COLUMNS
    assert set(FEATURE_COLUMNS) <= set(PAGES_SCHEMA.names)


def test_parts_from_before_routing_read_as_ocr_mode():
    from pipeline.stages.rows import mark_error, new_row

    doc = {"doc_id": "d", "source_uri": "u", "content_hash": "c"}
    rows = [new_row(STAMP, doc, 0, 1), mark_error(new_row(STAMP, doc, -1, -1), "render", "x")]
    new = {"route", "route_reason", "route_s", *FEATURE_COLUMNS}
    old = to_table(rows).select([n for n in PAGES_SCHEMA.names if n not in new])
    table = conform(old)
    assert table["route"].to_pylist() == ["ocr", ""]
    assert table["route_reason"].to_pylist() == [OCR_MODE, ""]
    assert table["feat_chars"].to_pylist() == [0, 0] and table.schema == PAGES_SCHEMA
