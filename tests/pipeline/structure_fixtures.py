"""A rendered PDF page with a figure at a known place, and a grounding output that locates it as the model
would (0-999 over the page): what the structure, commit and export tests build on."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import RenderConfig
from pipeline.stages.rasterizer import render_pdf
from pipeline.stages.rows import RunStamp, new_row
from rtprune.engines.contract import EngineIdentity

GROUNDING = Path(__file__).resolve().parents[1] / "data" / "grounding"
PAGE_PT = (595.0, 842.0)
FIGURE_PT = (100.0, 200.0, 300.0, 350.0)  # a red rectangle on the page, PDF points (y down)
RED = (255, 0, 0)


def _pdf_with_figure() -> bytes:
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=PAGE_PT[0], height=PAGE_PT[1])
    page.draw_rect(pymupdf.Rect(*FIGURE_PT), color=(1, 0, 0), fill=(1, 0, 0))
    page.insert_text((72, 100), "Title of the page", fontsize=20)
    return doc.tobytes()


def _model(v: float, side: float) -> int:
    return round(v / side * 999)


def model_box(box_pt) -> list[int]:
    x0, y0, x1, y1 = box_pt
    return [_model(x0, PAGE_PT[0]), _model(y0, PAGE_PT[1]), _model(x1, PAGE_PT[0]), _model(y1, PAGE_PT[1])]


def grounding_text() -> str:
    fig = ", ".join(str(v) for v in model_box(FIGURE_PT))
    return (
        "<|ref|>title<|/ref|><|det|>[[121, 95, 500, 125]]<|/det|>\n# Title of the page\n\n"
        f"<|ref|>image<|/ref|><|det|>[[{fig}]]<|/det|>\n\n"
        "<|ref|>image_caption<|/ref|><|det|>[[168, 420, 500, 440]]<|/det|>\n<center>A red square.</center>\n\n"
        "<|ref|>table<|/ref|><|det|>[[100, 500, 900, 600]]<|/det|>\n<table><tr><td>1</td></tr></table>\n\n"
        "<|ref|>equation<|/ref|><|det|>[[100, 650, 900, 700]]<|/det|>\n\\[ x^2 \\]"
    )


def rendered_page_row(doc_id: str = "d0c", page_index: int = 3, page_count: int = 5) -> dict:
    """The row the render stage makes of the page with the red square, as OCR gave it `eos`."""
    page = render_pdf(_pdf_with_figure(), RenderConfig()).pages[0]
    stamp = RunStamp("run-1", EngineIdentity("m", "large", "none", ""))
    doc = {"doc_id": doc_id, "source_uri": f"s3://b/{doc_id}.pdf", "content_hash": "c"}
    return new_row(stamp, doc, page_index, page_count) | {
        "image": page.data,
        "width_px": page.width_px,
        "height_px": page.height_px,
        "width_pt": page.width_pt,
        "height_pt": page.height_pt,
        "page_format": "png",
        "text_source": "ocr",
        "finish_reason": "eos",
    }
