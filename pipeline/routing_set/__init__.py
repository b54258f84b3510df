"""The labelled set the page router is calibrated and tested on, generated in code and deterministic (same
seed, same bytes): born-digital pages in several scripts, scans with and without an OCR layer, fonts with
missing or wrong Unicode maps, text drawn as outlines, figures, forms, rotated and near-empty pages.

A label says whether the page's own text layer is exact ("text_layer") or the page needs OCR ("ocr").
A scan's good invisible layer is labelled "text_layer": the layer is exact. Whether the router may take it
is a setting (trust_invisible_text); expected_route gives the route a page should get under each setting.
docs/routing.md lists the kinds and why each is labelled the way it is."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

from pipeline.routing_set import pages as rp
from pipeline.routing_set import scans as rs

TEXT_LAYER, OCR = "text_layer", "ocr"
# Kinds whose text is a scanner's invisible OCR layer: exact, but taken only when it is trusted.
INVISIBLE_LAYER_KINDS = frozenset({"scan_good_layer"})


class LabelledPage(NamedTuple):
    pdf_bytes: bytes
    page_index: int
    kind: str
    label: str  # "text_layer": the page's text layer is exact; "ocr": it is missing, partial or wrong


def expected_route(kind: str, label: str, trust_invisible_text: bool) -> str:
    """The route a correct router gives a page of `kind` labelled `label` under trust_invisible_text."""
    if kind in INVISIBLE_LAYER_KINDS and not trust_invisible_text:
        return OCR
    return label


def _pages(build: Callable[..., None], count: int) -> Callable[[random.Random], bytes]:
    """A document of `count` pages, page i drawn by build(doc, page, rng, i)."""

    def make(rng: random.Random) -> bytes:
        doc = rp.new_doc()
        for i in range(count):
            page = doc.new_page(width=rp.A4[0], height=rp.A4[1])
            build(doc, page, rng, i)
        return rp.save(doc)

    return make


# (kind, label, builder): a builder returns one PDF whose pages all carry the kind's label.
KINDS: tuple[tuple[str, str, Callable[[random.Random], bytes]], ...] = (
    ("born_latin", TEXT_LAYER, _pages(rp.latin_page, 8)),
    ("born_cyrillic_greek", TEXT_LAYER, _pages(rp.cyrillic_greek_page, 4)),
    ("born_cjk", TEXT_LAYER, _pages(rp.cjk_page, 6)),
    ("born_arabic", TEXT_LAYER, _pages(rp.arabic_page, 4)),
    ("born_math", TEXT_LAYER, _pages(rp.math_page, 5)),
    ("born_form", TEXT_LAYER, _pages(rp.form_page, 4)),
    ("born_rotated", TEXT_LAYER, _pages(rp.rotated_page, 4)),
    ("born_with_figure", TEXT_LAYER, _pages(rp.figure_beside_text_page, 4)),
    ("born_vector_chart", TEXT_LAYER, _pages(rp.vector_chart_page, 4)),
    ("born_on_background", TEXT_LAYER, _pages(rp.background_page, 3)),
    ("near_empty", TEXT_LAYER, _pages(rp.near_empty_page, 4)),
    ("scan_good_layer", TEXT_LAYER, _pages(rs.scan_good_layer_page, 6)),
    ("scan_image_only", OCR, _pages(rs.scan_page, 9)),
    ("scan_garbage_layer", OCR, _pages(rs.scan_garbage_layer_page, 7)),
    ("unmapped_font", OCR, rs.unmapped_font_doc),
    ("wrong_unicode_map", OCR, rs.wrong_map_doc),
    ("vector_outlined", OCR, _pages(rs.outlined_page, 4)),
    ("figure_page", OCR, _pages(rs.figure_page, 4)),
)


def labelled_pages(seed: int = 0) -> list[LabelledPage]:
    """Every page of every kind, in KINDS order. Each kind draws from its own generator seeded by
    (seed, kind), so adding a kind leaves the others' bytes alone."""
    import pymupdf

    out: list[LabelledPage] = []
    for kind, label, build in KINDS:
        data = build(random.Random(f"{seed}:{kind}"))
        with pymupdf.open(stream=data, filetype="pdf") as doc:
            count = doc.page_count
        out += [LabelledPage(data, i, kind, label) for i in range(count)]
    return out
