import time

import pytest

from pipeline.config import RenderConfig, StorageConfig
from pipeline.samples import (
    corrupt_pdf_bytes,
    empty_pdf_bytes,
    encrypted_pdf_bytes,
    noisy_pdf_bytes,
    pathological_pdf_bytes,
    sample_pdf_bytes,
)
from pipeline.stages.isolation import IsolatedRenderer
from pipeline.stages.rasterizer import decode_page, page_zoom, render_pdf
from pipeline.stages.render import render_document
from pipeline.stages.rows import RunStamp
from rtprune.engines.contract import EngineIdentity

CFG = RenderConfig()


def test_healthy_document_renders_every_page_at_dpi():
    out = render_pdf(sample_pdf_bytes(3), CFG)
    assert out.error == "" and out.page_count == 3 and len(out.pages) == 3
    page = out.pages[0]
    assert (page.width_px, page.height_px) == (round(595 * 2), round(842 * 2))  # 144 dpi = zoom 2
    img = decode_page(page.data, page.width_px, page.height_px, "png")
    assert img.size == (page.width_px, page.height_px) and img.mode == "RGB"


def test_raw_format_round_trips():
    page = render_pdf(sample_pdf_bytes(1), RenderConfig(page_format="raw")).pages[0]
    assert len(page.data) == page.width_px * page.height_px * 3
    assert decode_page(page.data, page.width_px, page.height_px, "raw").size == (
        page.width_px,
        page.height_px,
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (corrupt_pdf_bytes(), "cannot open PDF"),
        (encrypted_pdf_bytes(), "encrypted"),
        (empty_pdf_bytes(), "no pages"),
        (b"", "empty file"),
    ],
)
def test_unreadable_documents_give_a_reason(data, reason):
    out = render_pdf(data, CFG)
    assert out.pages == [] and reason in out.error


def test_byte_and_page_caps():
    big = noisy_pdf_bytes()
    assert "max_bytes" in render_pdf(big, RenderConfig(max_bytes=len(big) - 1)).error
    assert "max_pages 2" in render_pdf(sample_pdf_bytes(3), RenderConfig(max_pages=2)).error


def test_pixel_cap_scales_the_page_down_instead_of_failing():
    cap = 500_000
    page = render_pdf(sample_pdf_bytes(1), RenderConfig(max_pixels_per_page=cap)).pages[0]
    assert page.width_px * page.height_px <= cap and page.dpi < 144
    assert page.width_px / page.height_px == pytest.approx(595 / 842, rel=0.01)
    assert page_zoom(595, 842, 144, 10**9) == 2.0


def test_hanging_document_is_killed_and_the_renderer_recovers():
    renderer = IsolatedRenderer(RenderConfig(timeout_s=1.5))
    try:
        assert renderer.render(sample_pdf_bytes(1)).error == ""  # child started: the timing below is the kill
        start = time.monotonic()
        out = renderer.render(pathological_pdf_bytes(strokes=20000))  # ~10 s+ of rasterization
        assert "timed out after 1.5 s" in out.error and time.monotonic() - start < 8
        assert renderer.restarts == 1
        ok = renderer.render(sample_pdf_bytes(2))  # a fresh child takes the next document
        assert ok.error == "" and len(ok.pages) == 2
    finally:
        renderer.close()


def _stamp():
    return RunStamp("r1", EngineIdentity("tiny-random-v1", "tiny", "rtprune", "abc"))


def _doc(path, size):
    return {
        "doc_id": "d1",
        "uri": str(path),
        "source_uri": str(path),
        "size_bytes": size,
        "content_hash": "h",
    }


def test_render_document_rows_share_render_time(tmp_path):
    path = tmp_path / "a.pdf"
    path.write_bytes(sample_pdf_bytes(2))
    renderer = IsolatedRenderer(CFG)
    try:
        rows = render_document(_doc(path, path.stat().st_size), renderer, StorageConfig(), _stamp(), CFG)
    finally:
        renderer.close()
    assert [r["page_index"] for r in rows] == [0, 1] and all(r["status"] == "ok" for r in rows)
    assert rows[0]["render_s"] == rows[1]["render_s"] > 0 and rows[0]["page_count"] == 2
    assert rows[0]["image"][:4] == b"\x89PNG" and rows[0]["model_id"] == "tiny-random-v1"


def test_render_document_errors_are_rows(tmp_path):
    renderer = IsolatedRenderer(CFG)
    try:
        missing = render_document(
            _doc(tmp_path / "missing.pdf", 10), renderer, StorageConfig(), _stamp(), CFG
        )
        big = render_document(_doc(tmp_path / "x.pdf", 10**12), renderer, StorageConfig(), _stamp(), CFG)
    finally:
        renderer.close()
    assert [(r["page_index"], r["status"], r["error_stage"]) for r in missing] == [(-1, "error", "read")]
    assert "FileNotFoundError" in missing[0]["error"]
    assert big[0]["error_stage"] == "render" and "max_bytes" in big[0]["error"]


def _big_pages_pdf(side_pt: float, pages: int = 1) -> bytes:
    import pymupdf

    doc = pymupdf.open()
    for i in range(pages):
        doc.new_page(width=side_pt, height=side_pt).insert_text((72, 72), f"page {i}", fontsize=24)
    return doc.tobytes()


# The render child holds ~450 MB before any document. 7,000 pt at 144 dpi is a 14,000 x 14,000 px pixmap
# (588 MB) in one allocation (MuPDF runs out); 16 pages of 2,000 pt in raw format hold ~770 MB of page
# bytes by the end of the document (Python runs out).
HUGE_PAGE = RenderConfig(max_pixels_per_page=10**9, page_format="raw", memory_limit_mb=768)
MEMORY_HOGS = {
    "one_huge_page": (_big_pages_pdf(7_000), HUGE_PAGE),
    "many_raw_pages": (_big_pages_pdf(2_000, pages=16), RenderConfig(page_format="raw", memory_limit_mb=768)),
}


@pytest.mark.parametrize("case", sorted(MEMORY_HOGS))
def test_a_document_past_the_memory_limit_is_an_error_and_the_next_one_renders(case):
    data, cfg = MEMORY_HOGS[case]
    renderer = IsolatedRenderer(cfg)
    try:
        out = renderer.render(data)
        assert out.pages == [] and out.error.startswith("out of memory") and "768 MB" in out.error
        assert renderer.restarts == 1  # the child that hit its limit is replaced
        ok = renderer.render(sample_pdf_bytes(2))
        assert ok.error == "" and len(ok.pages) == 2 and renderer.restarts == 1
    finally:
        renderer.close()


def test_without_the_limit_the_same_page_renders():
    """The huge page really needs the memory: the limit, not the page, made it fail above."""
    out = render_pdf(_big_pages_pdf(7_000), HUGE_PAGE)  # in this process: no limit
    assert out.error == "" and out.pages[0].width_px == 14_000


def test_a_limit_below_the_renderers_own_needs_stops_the_job():
    renderer = IsolatedRenderer(RenderConfig(memory_limit_mb=64))
    with pytest.raises(RuntimeError, match="memory_limit_mb=64 is below"):
        renderer.render(sample_pdf_bytes(1))
