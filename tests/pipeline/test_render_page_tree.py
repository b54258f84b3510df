"""A page tree that lies about its page count, and any other failure MuPDF raises where none was
expected: the document gets its real reason as an error row, and the render child lives on (or is
replaced) for the next document, instead of dying with "renderer process died (exit code 1)"."""

from __future__ import annotations

from pipeline.config import RenderConfig
from pipeline.stages.isolation import IsolatedRenderer
from pipeline.stages.rasterizer import RenderOutcome, render_pdf
from tests.reliability.hostile_pdfs import healthy_pdf, page_count_lie_pdf

CFG = RenderConfig()


def _explode(data: bytes, cfg: RenderConfig) -> RenderOutcome:
    """A render function that fails the way an unforeseen MuPDF error does (pickled into the child)."""
    if data == b"explode":
        raise RuntimeError("code=7: something MuPDF had not said before")
    return render_pdf(data, cfg)


def test_a_page_count_lie_is_the_documents_error_in_process():
    out = render_pdf(page_count_lie_pdf(1500), CFG)
    assert out.pages == [] and "page tree" in out.error and "Invalid number of pages" in out.error, out.error


def test_a_page_count_lie_gets_its_reason_through_the_render_child():
    renderer = IsolatedRenderer(CFG)
    try:
        out = renderer.render(page_count_lie_pdf(1500))
        assert "page tree" in out.error and "process died" not in out.error, out.error
        after = renderer.render(healthy_pdf(2))
        assert after.error == "" and len(after.pages) == 2
    finally:
        renderer.close()


def test_an_unexpected_render_error_is_the_documents_reason_and_the_child_is_replaced():
    renderer = IsolatedRenderer(CFG, render_fn=_explode)
    try:
        out = renderer.render(b"explode")
        assert out.error.startswith("render failed: RuntimeError: code=7: something MuPDF"), out.error
        assert renderer.restarts == 1  # a child that saw an unforeseen error is not trusted with the next
        after = renderer.render(healthy_pdf(1))
        assert after.error == "" and len(after.pages) == 1
    finally:
        renderer.close()
