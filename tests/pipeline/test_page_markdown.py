"""Markdown and plain text of a page's text layer: headings, paragraphs, lists, shaped Arabic."""

from __future__ import annotations

import random

import pytest

from pipeline.routing_set import pages as bp
from pipeline.routing_set.words import ARABIC
from pipeline.samples import sample_pdf_bytes
from pipeline.stages.page_features import read_text_layer
from pipeline.stages.page_markdown import layer_markdown, plain_text, text_layer_markdown

pymupdf = pytest.importorskip("pymupdf")


def _page():
    doc = pymupdf.open()
    return doc, doc.new_page(width=595, height=842)


def test_markdown_headings_paragraphs_and_lists():
    doc, page = _page()
    page.insert_text((72, 80), "Quarterly Report", fontsize=20)
    bp.textbox(page, (72, 100, 520, 200), "Body text " * 30, fontsize=10)
    for k, item in enumerate(("first item", "second item")):
        page.insert_text((72, 230 + 15 * k), f"• {item}", fontsize=10)
    md = text_layer_markdown(pymupdf.open(stream=bp.save(doc), filetype="pdf"), 0)
    blocks = md.split("\n\n")
    assert blocks[0] == "# Quarterly Report"
    assert blocks[1].startswith("Body text Body text") and "\n" not in blocks[1]
    assert "- first item\n- second item" in md


def test_shaped_arabic_reads_in_plain_letters():
    doc, page = _page()
    bp.arabic_page(doc, page, random.Random(0), 0)
    page = pymupdf.open(stream=bp.save(doc), filetype="pdf")[0]
    assert any("\ufe70" <= ch <= "\ufeff" for ch in page.get_text())  # get_text keeps the shaped forms
    md = layer_markdown(read_text_layer(page))
    assert not any("\ufb50" <= ch <= "\ufeff" for ch in md)
    assert sum(word in md for word in ARABIC) >= 8


def test_plain_text_matches_get_text_on_a_simple_page():
    page = pymupdf.open(stream=sample_pdf_bytes(1), filetype="pdf")[0]
    assert plain_text(read_text_layer(page)) == page.get_text()
