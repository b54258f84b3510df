"""Rendering with the page router, in the render child where each page is already open: every page's text
layer is read once (its features, its Markdown, its plain text), the router decides (per page, or per
document), and only the pages going to OCR are rasterized. A page routed to its text layer leaves with its
Markdown and no image. Pure function of (bytes, RenderConfig, RoutingConfig), like render_pdf, so the
isolation layer runs it the same way (functools.partial binds the routing config)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from pipeline.config import RenderConfig
from pipeline.routing_config import RoutingConfig
from pipeline.schema import FEATURE_PREFIX
from pipeline.stages.page_features import PageFeatures, page_features, read_text_layer
from pipeline.stages.page_markdown import layer_markdown, plain_text
from pipeline.stages.rasterizer import (
    RenderedPage,
    RenderOutcome,
    is_out_of_memory,
    open_pdf,
    render_page_or_error,
    valid_text,
)
from pipeline.stages.routing import DOCUMENT_OCR, RouteDecision, route_document

# Where a routed page's text came from (the page policy's own fallback to the layer is "text_layer").
TEXT_SOURCE_ROUTED = "text_layer_routed"
# A page whose text layer could not be read goes to OCR with this reason (the rules need its features).
FEATURES_FAILED = "features_failed"


@dataclass(frozen=True)
class LayerRead:
    """What the first pass keeps of a page (not its TextLayer, which holds the page's display list)."""

    features: PageFeatures | None  # None: the layer could not be read
    markdown: str
    text: str  # plain text, cut to RenderConfig.text_layer_max_chars
    seconds: float
    error: str = ""


def read_layer(doc, index: int, cfg: RenderConfig) -> LayerRead:
    """Page `index`'s text layer, read once: features, Markdown and plain text. A page that cannot be read
    is not an error row: it goes to OCR, where its rasterizing decides."""
    start = time.perf_counter()
    try:
        page = doc[index]
        layer = read_text_layer(page)
        features = page_features(page, layer)
        markdown = valid_text(layer_markdown(layer))
        text = valid_text(plain_text(layer)[: cfg.text_layer_max_chars])
    except Exception as exc:  # a page with a broken content stream or font
        if is_out_of_memory(exc):  # the document's (and the process's) problem
            raise MemoryError(str(exc)) from exc
        reason = f"{type(exc).__name__}: {exc}"[:200]
        return LayerRead(None, "", "", time.perf_counter() - start, reason)
    return LayerRead(features, markdown, text, time.perf_counter() - start)


def decide(reads: list[LayerRead], routing: RoutingConfig) -> list[RouteDecision]:
    """The router's decisions for a document's pages; a page whose layer could not be read goes to OCR
    and counts as a failing page for the per-document rule."""
    readable = [r.features for r in reads if r.features is not None]
    decided = iter(route_document(readable, routing))
    decisions = [
        next(decided) if r.features is not None else RouteDecision("ocr", FEATURES_FAILED) for r in reads
    ]
    passing = sum(d.route == "text_layer" for d in decisions)
    if routing.per_document and passing < routing.document_text_share * len(decisions):
        decisions = [d if d.route == "ocr" else RouteDecision("ocr", DOCUMENT_OCR) for d in decisions]
    return decisions


def finish_page(doc, index: int, read: LayerRead, decision: RouteDecision, cfg: RenderConfig) -> RenderedPage:
    """A routed page as its Markdown; any other page rasterized (its text layer from the first pass)."""
    if decision.route == "text_layer":
        return RenderedPage(
            0,
            0,
            b"",
            0.0,
            text_layer=read.text,
            markdown=read.markdown,
            work_s=read.seconds,
            route_s=read.seconds,
            route=decision.route,
            route_reason=decision.reason,
            features=read.features,
        )
    start = time.perf_counter()
    text = read.text if read.features is not None else None  # unread: PyMuPDF's own get_text
    page = render_page_or_error(doc, index, cfg, text)
    return replace(
        page,
        work_s=read.seconds + time.perf_counter() - start,
        route_s=read.seconds,
        route=decision.route,
        route_reason=decision.reason,
        features=read.features,
    )


def render_routed_pdf(data: bytes, cfg: RenderConfig, routing: RoutingConfig) -> RenderOutcome:
    """render_pdf with the router: every page's layer first, the decisions, then the pixmaps of the pages
    going to OCR. Errors as render_pdf (a document that cannot be opened, MemoryError)."""
    opened = open_pdf(data, cfg)
    if isinstance(opened, str):
        return RenderOutcome(error=opened)
    with opened as doc:
        n = doc.page_count
        reads = [read_layer(doc, i, cfg) for i in range(n)]
        decisions = decide(reads, routing)
        pages = [finish_page(doc, i, reads[i], decisions[i], cfg) for i in range(n)]
    return RenderOutcome(pages=pages, page_count=n)


def route_columns(page: RenderedPage) -> dict[str, Any]:
    """A rendered page's routing columns for its row: the decision, its cost, the features (0 without),
    and for a page routed to its text layer its text (the Markdown), as an ok page that needs no OCR."""
    features = asdict(page.features) if page.features is not None else {}
    columns: dict[str, Any] = {
        "route": page.route,
        "route_reason": page.route_reason,
        "route_s": page.route_s,
        **{FEATURE_PREFIX + name: value for name, value in features.items()},
    }
    if page.route == "text_layer":
        columns.update(text=page.markdown, text_source=TEXT_SOURCE_ROUTED)
    return columns
