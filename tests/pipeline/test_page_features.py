"""Page features on pages built to show one trait each: a born-digital page, an invisible layer, a font
without a Unicode map or with a wrong one, a scan, an image, outlines, a rotated page."""

from __future__ import annotations

import random

import pytest

from pipeline.routing_set import fonts
from pipeline.routing_set import pages as bp
from pipeline.samples import sample_pdf_bytes
from pipeline.stages.page_features import page_features, read_text_layer
from pipeline.stages.page_markdown import plain_text

pymupdf = pytest.importorskip("pymupdf")


def _reopen(doc):  # -> the first page of doc saved and opened again (what the render child sees)
    return pymupdf.open(stream=bp.save(doc), filetype="pdf")[0]


def _page():
    doc = pymupdf.open()
    return doc, doc.new_page(width=595, height=842)


def test_born_digital_page_has_dense_exact_text():
    page = pymupdf.open(stream=sample_pdf_bytes(1), filetype="pdf")[0]
    f = page_features(page)
    assert f.chars > 500 and f.chars_per_kpt2 > 1.0
    assert f.unmapped_share == f.invisible_share == f.image_cover == 0.0
    assert f.glyph_paths == 0 and f.vector_paths > 0  # the table's ruled cells are paths, not glyphs
    assert f.words_per_line > 3 and 3 < f.mean_word_letters < 8


def test_invisible_layer_is_measured_by_share():
    doc, page = _page()
    page.insert_text((72, 100), "visible words on the page", fontsize=11)
    page.insert_text((72, 200), "hidden words written by a scanner", fontsize=11, render_mode=3)
    f = page_features(_reopen(doc))
    hidden, visible = len("hiddenwordswrittenbyascanner"), len("visiblewordsonthepage")
    assert f.invisible_share == pytest.approx(hidden / (hidden + visible))


def test_font_without_unicode_map_reads_as_unmapped():
    doc, page = _page()
    font = bp.dejavu(page)
    page.insert_text((72, 100), "Every glyph of this line has lost its code point.", fontname=font)
    fonts.drop_unicode_map(doc, page, font)
    page = _reopen(doc)
    assert page_features(page).unmapped_share == 1.0
    assert set(plain_text(read_text_layer(page)).strip()) <= {"\ufffd", " "}


def test_scrambled_map_reads_as_mixed_scripts():
    doc, page = _page()
    font = bp.dejavu(page)
    text = " ".join(["correct glyphs and wrong code points"] * 5)
    page.insert_text((72, 100), text, fontname=font, fontsize=6)
    fonts.scramble_unicode_map(doc, page, font, text, "ЖΣÆБΔЯ")
    f = page_features(_reopen(doc))
    assert f.unmapped_share == 0.0 and f.mixed_script_word_share > 0.8


def test_scan_is_image_covered_with_no_layer():
    doc, page = _page()
    bp.latin_page(doc, page, random.Random(0), 0)
    scan_doc, scan = _page()
    scan.insert_image(scan.rect, pixmap=page.get_pixmap(dpi=50))
    f = page_features(_reopen(scan_doc))
    assert f.chars == 0 and f.images == 1 and f.image_cover == pytest.approx(1.0, abs=0.01)


def test_half_page_image_covers_half():
    doc, page = _page()
    page.insert_image((0, 0, 595, 421), pixmap=bp.picture(random.Random(0), 8, 8), keep_proportion=False)
    assert page_features(_reopen(doc)).image_cover == pytest.approx(0.5, abs=0.01)


def test_outlined_text_counts_glyph_paths():
    doc, page = _page()
    line = "outlined words have no layer"
    fonts.append_content(doc, page, fonts.outline_ops(line, 72, 700, 12)[0])
    f = page_features(_reopen(doc))
    # DejaVu draws "l" and the stem and dot of "i" as plain rectangles, which do not count as glyph-like.
    assert f.chars == 0 and f.glyph_paths == len(line.replace(" ", "")) - line.count("l") - line.count("i")


def test_rotated_page_keeps_its_text_and_says_so():
    doc, page = _page()
    bp.latin_page(doc, page, random.Random(1), 0)
    page.set_rotation(90)
    f = page_features(_reopen(doc))
    assert f.rotation == 90 and f.rotated_text_share == 1.0 and f.unmapped_share == 0.0
