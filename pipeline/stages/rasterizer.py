"""Rasterize a PDF with PyMuPDF under caps. Pure function of (bytes, RenderConfig); the isolation layer
(pipeline/stages/isolation.py) runs it in a child process so a hang or crash costs one document, not a worker."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from pipeline.config import RenderConfig
from pipeline.stages.page_features import PageFeatures


@dataclass(frozen=True)
class RenderedPage:
    width_px: int
    height_px: int
    data: bytes  # PNG, or raw RGB (height * width * 3) when page_format == "raw"
    dpi: float  # effective dpi: lower than asked when the pixel cap scaled the page down
    error: str = ""  # this page alone failed to rasterize (the others still go on)
    text_layer: str = ""  # the page's own text (PyMuPDF), cut to RenderConfig.text_layer_max_chars
    # The router's decision (pipeline/stages/routed_render.py); without routing every page goes to OCR. A
    # page routed to its text layer has no image (data b"", 0 x 0) and its Markdown instead.
    route: str = "ocr"
    route_reason: str = "ocr_mode"
    features: PageFeatures | None = None  # None: routing off, or the page's layer could not be read
    markdown: str = ""
    work_s: float = 0.0  # seconds this page took in the child (0: not measured; the stage shares evenly)
    route_s: float = 0.0  # of work_s: reading the layer, its features, the decision and the Markdown
    # The page's size in PDF points (page.rect: /Rotate applied): maps layout boxes to the page's points.
    width_pt: float = 0.0
    height_pt: float = 0.0


@dataclass(frozen=True)
class RenderOutcome:
    pages: list[RenderedPage] = field(default_factory=list)
    page_count: int = -1  # -1: the document could not be opened
    error: str = ""  # non-empty: the whole document failed (one error row)
    restart: bool = False  # the process that rendered it should not be reused (it ran out of memory)


# MuPDF reports a failed allocation as an FzError whose message names the call ("malloc (N bytes) failed").
_ALLOC_FAILED = re.compile(r"\b(?:m|c|re)alloc\b.*\bfailed\b")


def is_out_of_memory(exc: BaseException) -> bool:
    """Python's MemoryError, or MuPDF failing to allocate (both: the process hit its memory limit)."""
    return isinstance(exc, MemoryError) or bool(_ALLOC_FAILED.search(str(exc)))


def page_zoom(width_pt: float, height_pt: float, dpi: float, max_pixels: int) -> float:
    """Zoom factor for `dpi`, reduced so width_px * height_px stays within max_pixels."""
    zoom = dpi / 72.0
    pixels = (width_pt * zoom) * (height_pt * zoom)
    if pixels > max_pixels:
        zoom *= math.sqrt(max_pixels / pixels) * 0.999  # margin for rounding up to whole pixels
    return zoom


def open_pdf(data: bytes, cfg: RenderConfig):  # -> pymupdf.Document | str (reason)
    import pymupdf

    if len(data) > cfg.max_bytes:
        return f"too large: {len(data)} bytes > max_bytes {cfg.max_bytes}"
    if not data:
        return "empty file (0 bytes)"
    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except Exception as exc:  # PyMuPDF raises several types for broken files
        if is_out_of_memory(exc):
            raise MemoryError(str(exc)) from exc
        return f"cannot open PDF: {type(exc).__name__}: {exc}"[:300]
    reason = _refusal(doc, cfg)
    if reason:
        doc.close()
        return reason
    return doc


def _refusal(doc, cfg: RenderConfig) -> str:
    """Why an opened document is not rendered ("" when it is). MuPDF counts pages lazily, on the first
    page_count: a page tree whose /Count disagrees with its kids ("Invalid number of pages") raises
    there, after a successful open."""
    if not doc.is_pdf:  # MuPDF opens images and other formats even when told the bytes are a PDF
        return "not a PDF (the file's content is another format)"
    if doc.needs_pass:
        return "encrypted: password required"
    try:
        n = doc.page_count
    except Exception as exc:  # broken page tree: MuPDF raises a plain RuntimeError (FzErrorFormat)
        if is_out_of_memory(exc):
            raise MemoryError(str(exc)) from exc
        return f"cannot open PDF: broken page tree: {type(exc).__name__}: {exc}"[:300]
    if n == 0:
        return "no pages"
    if n > cfg.max_pages:
        return f"too many pages: {n} > max_pages {cfg.max_pages}"
    return ""


def _render_page(page, cfg: RenderConfig, text: str | None = None) -> RenderedPage:
    import pymupdf

    zoom = page_zoom(page.rect.width, page.rect.height, cfg.dpi, cfg.max_pixels_per_page)
    pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), colorspace=pymupdf.csRGB, alpha=False)
    data = pix.tobytes("png") if cfg.page_format == "png" else bytes(pix.samples)
    if text is None:
        text = text_layer(page, cfg.text_layer_max_chars)
    return RenderedPage(
        pix.width,
        pix.height,
        data,
        zoom * 72.0,
        text_layer=text,
        width_pt=float(page.rect.width),
        height_pt=float(page.rect.height),
    )


def text_layer(page, max_chars: int) -> str:
    """The page's own text (born-digital PDFs have one, scans usually not), at most max_chars characters.
    Invalid code points (lone surrogates from broken font maps) are replaced: Arrow refuses them."""
    if max_chars <= 0:
        return ""
    return valid_text(page.get_text("text")[:max_chars])


def valid_text(text: str) -> str:
    """`text` with invalid code points (lone surrogates) replaced: Arrow refuses them."""
    return text.encode("utf-8", "replace").decode("utf-8")


def render_page_or_error(doc, index: int, cfg: RenderConfig, text: str | None = None) -> RenderedPage:
    """Page `index` rasterized (with `text` as its text layer, or PyMuPDF's), or a page with `error` set."""
    try:
        return _render_page(doc[index], cfg, text)
    except Exception as exc:  # one broken page (bad image stream, font) must not sink the document
        if is_out_of_memory(exc):  # out of memory is the document's (and the process's) problem
            raise MemoryError(str(exc)) from exc
        return RenderedPage(0, 0, b"", 0.0, error=f"page render failed: {type(exc).__name__}: {exc}"[:300])


def render_pdf(data: bytes, cfg: RenderConfig) -> RenderOutcome:
    """All pages of one document, or a document-level reason it cannot be opened. A page that fails to
    rasterize becomes a page with `error` set, so the rest of the document still gets text. Running out of
    memory raises MemoryError (the isolation layer turns it into the document's error and a restart)."""
    opened = open_pdf(data, cfg)
    if isinstance(opened, str):
        return RenderOutcome(error=opened)
    with opened as doc:
        n = doc.page_count
        pages = [render_page_or_error(doc, i, cfg) for i in range(n)]
    return RenderOutcome(pages=pages, page_count=n)


def decode_page(data: bytes, width_px: int, height_px: int, page_format: str):  # -> PIL.Image.Image
    """Page bytes from the render stage back to an RGB PIL image for the engine."""
    import io

    from PIL import Image

    if page_format == "raw":
        return Image.frombytes("RGB", (width_px, height_px), data)
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")
