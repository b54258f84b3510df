"""What a page's own text layer looks like, measured cheaply where the page is already open (the render
child): PageFeatures, plain numbers the router (pipeline/stages/routing.py) reads and a page row can keep as
columns. One content pass: the page's display list, from which two text pages (spans; image and vector
boxes) are taken and, for pages that still go to OCR, the pixmap. docs/routing.md says why each feature."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.stages.text_signs import text_signs

# Glyph outlines drawn as paths ("text converted to outlines") are small filled shapes: no side above this
# (a 36 pt heading's capitals stay below it; table rules, boxes and figures are larger or are rectangles).
GLYPH_PATH_MAX_PT = 40.0
# MuPDF's per-character flags (fz_stext_char.flags): painted by a fill or a stroke, or wholly clipped away.
_FILLED, _STROKED, _CLIPPED = 16, 32, 64


@dataclass(frozen=True)
class TextLayer:
    """One read of a page: its text blocks (lines and spans, as PyMuPDF's "dict" gives them), the boxes
    of its images and vector paths, and the display list they came from (render the page's pixmap from it
    to skip a second parse of the content stream)."""

    width_pt: float
    height_pt: float
    rotation: int
    text_blocks: list[dict[str, Any]]
    image_boxes: list[tuple[float, float, float, float]]
    vector_boxes: list[tuple[float, float, float, float, bool, bool]]  # (x0, y0, x1, y1, filled, is_rect)
    display_list: Any = None


def read_text_layer(page, display_list=None) -> TextLayer:
    """Interpret the page once (its display list, annotations and form fields included, as the renderer
    draws them; pass one already made to reuse it) and extract what the features and the Markdown need.
    Ligatures are expanded (shaped Arabic comes out in its plain letters, not presentation forms) and a
    glyph without a Unicode mapping comes out as U+FFFD (not as its CID, which would read as a letter)."""
    import pymupdf

    display_list = display_list if display_list is not None else page.get_displaylist()
    spans_page = pymupdf.TextPage(display_list.get_textpage(flags=pymupdf.TEXT_MEDIABOX_CLIP))
    text_blocks = [b for b in spans_page.extractDICT()["blocks"] if b["type"] == 0]
    # Images and vectors come from a second text page: the "dict" extraction would encode every image
    # (hundreds of ms for a scan), while the "blocks" one only describes it.
    flags = pymupdf.TEXT_MEDIABOX_CLIP | pymupdf.TEXT_PRESERVE_IMAGES | pymupdf.TEXT_COLLECT_VECTORS
    boxes_page = pymupdf.TextPage(display_list.get_textpage(flags=flags))
    images, vectors = [], []
    for x0, y0, x1, y1, text, _, kind in boxes_page.extractBLOCKS():
        if kind == 1:
            images.append((x0, y0, x1, y1))
        elif kind == 3:
            vectors.append((x0, y0, x1, y1, "vector filled" in text, "is-rect: true" in text))
    rect = page.rect
    return TextLayer(rect.width, rect.height, page.rotation, text_blocks, images, vectors, display_list)


@dataclass(frozen=True)
class PageFeatures:
    """A page's text layer in numbers (shares are of the page's non-whitespace characters, or of its words
    for the word shares; 0.0 when there is nothing to share)."""

    width_pt: float
    height_pt: float
    rotation: int  # the page's /Rotate: 0, 90, 180 or 270
    chars: int  # non-whitespace characters in the text layer, visible or not
    lines: int
    words: int  # space-separated runs holding a letter
    chars_per_kpt2: float  # characters per 1000 square points (a full A4 page of 11 pt prose: about 5)
    letter_share: float
    unmapped_share: float  # U+FFFD, private use, controls, "(cid:N)": glyphs with no Unicode mapping
    invisible_share: float  # render mode 3 (a scanner's OCR layer), fully transparent, or clipped away
    symbol_share: float  # math, currency, arrows, box drawing, superscripts
    single_letter_word_share: float  # "H e l l o": a layer that lost its word structure
    mixed_script_word_share: float  # "HеIlo" with a Cyrillic e: a wrong code point map
    odd_word_share: float  # letters mixed with digits or symbols inside a word ("f0x", "qu|ck")
    mean_word_letters: float  # letters per word in space-separated scripts (lost spaces make it large)
    words_per_line: float
    rotated_text_share: float  # characters on lines that do not run left to right
    images: int
    image_cover: float  # share of the page's area under images (overlaps counted once per image, cap 1)
    vector_paths: int
    glyph_paths: int  # small filled non-rectangular paths: what text converted to outlines draws


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def _nonspace(text: str) -> int:
    return len(text) - text.count(" ") - text.count("\n") - text.count("\t")


def _span_stats(blocks: list[dict[str, Any]]) -> tuple[str, int, int, int]:
    """(the page's text, line count, invisible characters, characters on rotated lines)."""
    lines_text: list[str] = []
    invisible = rotated = 0
    for block in blocks:
        for line in block["lines"]:
            text = "".join(span["text"] for span in line["spans"])
            lines_text.append(text)
            for span in line["spans"]:
                flags = span.get("char_flags", _FILLED)
                if span.get("alpha", 255) == 0 or not flags & (_FILLED | _STROKED) or flags & _CLIPPED:
                    invisible += _nonspace(span["text"])
            if abs(line["dir"][0]) < 0.99:
                rotated += _nonspace(text)
    return "\n".join(lines_text), len(lines_text), invisible, rotated


def _image_cover(layer: TextLayer) -> float:
    area = layer.width_pt * layer.height_pt
    covered = 0.0
    for x0, y0, x1, y1 in layer.image_boxes:
        w = min(x1, layer.width_pt) - max(x0, 0.0)
        h = min(y1, layer.height_pt) - max(y0, 0.0)
        covered += max(w, 0.0) * max(h, 0.0)
    return min(1.0, _share(covered, area))


def _glyph_paths(layer: TextLayer) -> int:
    return sum(
        1
        for x0, y0, x1, y1, filled, is_rect in layer.vector_boxes
        if filled and not is_rect and 0 < x1 - x0 <= GLYPH_PATH_MAX_PT and 0 < y1 - y0 <= GLYPH_PATH_MAX_PT
    )


def page_features(page, layer: TextLayer | None = None) -> PageFeatures:
    """Features of an open pymupdf.Page; pass the TextLayer already read from it to skip reading again."""
    layer = layer if layer is not None else read_text_layer(page)
    text, lines, invisible, rotated = _span_stats(layer.text_blocks)
    signs = text_signs(text)
    chars, words = signs.chars, signs.words
    return PageFeatures(
        width_pt=layer.width_pt,
        height_pt=layer.height_pt,
        rotation=layer.rotation,
        chars=chars,
        lines=lines,
        words=words,
        chars_per_kpt2=_share(1000.0 * chars, layer.width_pt * layer.height_pt),
        letter_share=_share(signs.letters, chars),
        unmapped_share=_share(signs.unmapped, chars),
        invisible_share=min(1.0, _share(invisible, chars)),
        symbol_share=_share(signs.symbols, chars),
        single_letter_word_share=_share(signs.single_letter_words, signs.spaced_words),
        mixed_script_word_share=_share(signs.mixed_script_words, words),
        odd_word_share=_share(signs.odd_words, words),
        mean_word_letters=_share(signs.spaced_word_letters, signs.spaced_words),
        words_per_line=_share(words, lines),
        rotated_text_share=min(1.0, _share(rotated, chars)),
        images=len(layer.image_boxes),
        image_cover=_image_cover(layer),
        vector_paths=len(layer.vector_boxes),
        glyph_paths=_glyph_paths(layer),
    )
