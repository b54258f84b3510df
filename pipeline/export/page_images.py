"""Page images for the viewer: each exported document's pages rendered again from its source PDF, at export
time, as JPEG files beside its figures; the viewer draws the blocks over them.

The pipeline stores no page image (a preview per page of a whole corpus, for a viewer most pages are never
opened in). The export has what it needs to make one: the source's URI, its content hash as the run read
it, and the page's own rectangle, which the model's 0-999 boxes cover whole. So a document's source is read
again only when its content hash (ETag, else size and mtime: pipeline.store.listing.content_hash_of) is
still the one committed: the image is then of the very bytes the model read, and every box lands where it
did on the rendered page. A source that is gone, changed, unreadable or refused by the caps leaves the
document's sheets blank, with the reason in the viewer.

Rendering runs in the pipeline's isolated child processes (pipeline.stages.isolation) under the same caps as
the digitize job's render stage: a PDF that hangs or exhausts MuPDF costs its own images, never the export.

    markdown/{slug}-{hash}/p0004.jpg    page 4 of the document, PAGE_IMAGE_WIDTH_PX wide
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from pipeline.config import RenderConfig, StorageConfig
from pipeline.export.figures import figure_folder
from pipeline.export.records import Document
from pipeline.redact import describe_error
from pipeline.stages.isolation import IsolatedRenderer
from pipeline.stages.rasterizer import RenderedPage, RenderOutcome, is_out_of_memory, open_pdf, page_zoom
from pipeline.stages.render import read_document
from pipeline.stages.rows import PageFailure
from pipeline.store.fs import filesystem
from pipeline.store.listing import content_hash_of
from pipeline.store.output import Output
from pipeline.store.retry import retry

_JPEG_QUALITY = 75  # a page of text at 960 px: ~80 kB, sharp enough to read beside its boxes


@dataclass(frozen=True)
class DocumentImages:
    """One document's page images: page index -> path under the export root; `note` says why pages have
    none ("" when every page has its image)."""

    paths: dict[int, str] = field(default_factory=dict)
    note: str = ""


def page_image_path(markdown_path: str, index: int) -> str:
    """Where page `index` (0-based) of the document exported at `markdown_path` goes."""
    return f"{figure_folder(markdown_path)}/p{index + 1:04d}.jpg"


def _preview_page(doc, index: int, cfg: RenderConfig, width_px: int) -> RenderedPage:
    import pymupdf

    try:
        page = doc[index]
        w, h = page.rect.width, page.rect.height  # the dpi that makes the page width_px wide, within the cap
        zoom = page_zoom(w, h, width_px / w * 72.0, cfg.max_pixels_per_page)
        pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), colorspace=pymupdf.csRGB, alpha=False)
        return RenderedPage(pix.width, pix.height, pix.tobytes("jpg", jpg_quality=_JPEG_QUALITY), zoom * 72)
    except Exception as exc:  # one broken page leaves its own sheet blank
        if is_out_of_memory(exc):
            raise MemoryError(str(exc)) from exc
        return RenderedPage(0, 0, b"", 0.0, error=f"{type(exc).__name__}: {exc}"[:300])


def preview_pdf(data: bytes, cfg: RenderConfig, width_px: int) -> RenderOutcome:
    """Every page of a PDF as a JPEG `width_px` wide (fewer pixels where the page cap says so): what the
    isolated child runs (a partial of it with width_px)."""
    opened = open_pdf(data, cfg)
    if isinstance(opened, str):
        return RenderOutcome(error=opened)
    with opened as doc:
        n = doc.page_count
        return RenderOutcome(pages=[_preview_page(doc, i, cfg, width_px) for i in range(n)], page_count=n)


def _source_bytes(doc: Document, storage: StorageConfig, cfg: RenderConfig) -> bytes | str:
    """The source's bytes when it still holds the committed version, else why not. Read as the render
    stage reads a document (its byte cap, retries and deadline)."""
    fs, path = filesystem(doc.source_uri, storage)
    info = retry(lambda: fs.info(path))
    if content_hash_of(info) != doc.content_hash:
        return "the source changed since it was read"
    data = read_document(doc.source_uri, int(info.get("size") or 0), storage, cfg)
    return f"the source could not be read: {data.reason}" if isinstance(data, PageFailure) else data


def _document_images(
    doc: Document,
    markdown_path: str,
    renderer: IsolatedRenderer,
    dest: Output,
    storage: StorageConfig,
    cfg: RenderConfig,
) -> DocumentImages:
    """Render and write one document's page images; never raises for the document's own problems."""
    wanted = {p.index for p in doc.pages if p.index >= 0}
    if not wanted:
        return DocumentImages()
    try:
        data = _source_bytes(doc, storage, cfg)
    except FileNotFoundError:
        return DocumentImages(note="the source is gone")
    except Exception as exc:  # any storage failure costs this document its images, not the export
        return DocumentImages(note="the source could not be read: " + describe_error(exc, storage.secrets()))
    if isinstance(data, str):
        return DocumentImages(note=data)
    outcome = renderer.render(data)
    del data
    if outcome.error:
        return DocumentImages(note=f"the source could not be rendered: {outcome.error}")
    paths = {}
    for i, page in enumerate(outcome.pages):
        if i in wanted and not page.error:
            paths[i] = page_image_path(markdown_path, i)
            dest.put_atomic(dest.path(paths[i]), page.data)
    missing = len(wanted) - len(paths)
    return DocumentImages(paths, f"{missing} page(s) could not be rendered again" if missing else "")


@contextmanager
def _renderers(cfg: RenderConfig, width_px: int) -> Iterator[Callable[[], IsolatedRenderer]]:
    """The calling thread's isolated render child (one per worker thread, started on first use); all of
    them are closed at the end."""
    local = threading.local()
    made: list[IsolatedRenderer] = []
    lock = threading.Lock()

    def get() -> IsolatedRenderer:
        if not hasattr(local, "renderer"):
            local.renderer = IsolatedRenderer(cfg, functools.partial(preview_pdf, width_px=width_px))
            with lock:
                made.append(local.renderer)
        return local.renderer

    try:
        yield get
    finally:
        for renderer in made:
            renderer.close()


def write_page_images(
    docs: list[Document],
    names: dict[str, str],
    dest: Output,
    storage: StorageConfig,
    cfg: RenderConfig,
    width_px: int,
    workers: int,
) -> dict[str, DocumentImages]:
    """Each document's page images, rendered from its source and written under dest (before its viewer,
    which links them); doc_id -> what was written. `workers` documents at a time, each in its own child;
    a document's images are written as soon as they are made, so memory holds at most `workers` of them."""
    if not docs:
        return {}
    with _renderers(cfg, width_px) as renderer, ThreadPoolExecutor(max_workers=workers) as pool:

        def one(doc: Document) -> DocumentImages:
            return _document_images(doc, names[doc.doc_id], renderer(), dest, storage, cfg)

        return dict(zip([d.doc_id for d in docs], pool.map(one, docs), strict=True))
