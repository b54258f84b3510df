"""Pages of the routing set whose text layer is missing or wrong: scans (bare, stamped, with a good or a
garbage invisible OCR layer), fonts with no or a wrong Unicode map, text drawn as glyph outlines, full-page
figures with a caption. Builders as in pages.py: build(doc, page, rng, index), or whole documents."""

from __future__ import annotations

import random

from pipeline.routing_set import fonts
from pipeline.routing_set import pages as bp
from pipeline.routing_set.words import LATIN, sentences, words

# What a weak OCR engine writes for a letter (and a few symbols it sprinkles in).
_CONFUSABLE = {
    "o": "0",
    "l": "1",
    "i": "!",
    "e": "c",
    "s": "5",
    "a": "@",
    "t": "+",
    "g": "9",
    "b": "6",
    "m": "rn",
}
_NOISE = "~|^¬°«»¦'.,"
# Wrong targets for a scrambled font map: letters of three alphabets and symbols, as mojibake reads.
_MOJIBAKE = "ÀÆÐØÞßæðøþĦŁŒƒΔΘΛΞΠΣΦΨΩБГДЖЗИЛПФЦЧШЩЪЫЭЮЯ±×÷§¶†‡"


def _source(build, rng: random.Random, i: int):  # -> (pymupdf.Document, pymupdf.Page)
    doc = bp.new_doc()
    page = doc.new_page(width=bp.A4[0], height=bp.A4[1])
    build(doc, page, rng, i)
    return doc, page


def _paste_scan(page, source, rng: random.Random, i: int) -> None:
    """The source page rasterized in grey at 100 to 150 dpi, as JPEG or as a lossless image."""
    import pymupdf

    pix = source.get_pixmap(dpi=rng.choice((100, 120, 150)), colorspace=pymupdf.csGRAY)
    if i % 2 == 0:
        page.insert_image(page.rect, stream=pix.tobytes("jpeg", jpg_quality=rng.choice((60, 75, 90))))
    else:
        page.insert_image(page.rect, pixmap=pix)


_SCAN_SOURCES = (
    bp.latin_page,
    bp.cjk_page,
    bp.form_page,
    bp.math_page,
    bp.cyrillic_greek_page,
    bp.latin_page,
)


def scan_page(doc, page, rng: random.Random, i: int) -> None:
    """An image-only scan of a born-digital page; two carry a small digital stamp (a Bates number, a page
    count), one is blank paper, one is turned by /Rotate."""
    if i == 6:  # blank paper: a scan can still hold faint text, and the page has no layer to prefer
        _paste_scan(page, _source(bp.near_empty_page, rng, 0)[1], rng, i)
        return
    source = _source(_SCAN_SOURCES[i % len(_SCAN_SOURCES)], rng, i)[1]
    _paste_scan(page, source, rng, i)
    if i in (3, 7):
        page.insert_text((440, 820), f"ABC{rng.randint(10000, 99999)}", fontsize=9)
    if i == 8:
        page.insert_text((60, 30), f"Page {rng.randint(1, 9)} of 10", fontsize=8)
    if i == 5:
        page.set_rotation(90)


def garble(text: str, rng: random.Random, rate: float) -> str:
    """Text as a poor OCR engine reads it: `rate` of the words get confusable letters, stray symbols,
    a split, or turn into noise."""
    out = []
    for word in text.split(" "):
        if word and rng.random() < rate:
            op = rng.randrange(4)
            if op == 0:
                word = "".join(_CONFUSABLE.get(c, c) if rng.random() < 0.5 else c for c in word)
            elif op == 1:
                k = rng.randrange(len(word) + 1)
                word = word[:k] + rng.choice(_NOISE) + word[k:]
            elif op == 2 and len(word) > 2:
                word = " ".join(word)
            else:
                word = "".join(rng.choice(_NOISE + "iIl1") for _ in range(rng.randint(1, 4)))
        out.append(word)
    return " ".join(out)


def _invisible_layer(page, source, rng: random.Random, garble_rate: float) -> None:
    """The source page's lines written invisibly (render mode 3) where they stand, as scanners do."""
    font = bp.dejavu(page)
    for block in source.get_text("dict")["blocks"]:
        for line in block.get("lines", []):
            span = line["spans"][0]
            text = "".join(s["text"] for s in line["spans"])
            if garble_rate:
                text = garble(text, rng, garble_rate)
            page.insert_text(span["origin"], text, fontsize=span["size"], fontname=font, render_mode=3)


_LAYER_SOURCES = (bp.latin_page, bp.cyrillic_greek_page, bp.form_page)


def scan_good_layer_page(doc, page, rng: random.Random, i: int) -> None:
    source = _source(_LAYER_SOURCES[i % 3], rng, i)[1]
    _paste_scan(page, source, rng, i)
    _invisible_layer(page, source, rng, 0.0)


def scan_garbage_layer_page(doc, page, rng: random.Random, i: int) -> None:
    source = _source(_LAYER_SOURCES[i % 3], rng, i)[1]
    _paste_scan(page, source, rng, i)
    _invisible_layer(page, source, rng, (0.25, 0.35, 0.45, 0.55, 0.7, 0.85, 1.0)[i])


def _two_font_page(page, rng: random.Random, share: float, font: str) -> str:
    """Prose lines, the first `share` of them in `font` (DejaVuSans), the rest in Helvetica; returns the
    text drawn in `font`."""
    n, drawn = 36, []
    title = words(rng, LATIN, 4).title()
    page.insert_text((60, 70), title, fontsize=16, fontname=font if share >= 1 else "hebo")
    drawn.append(title if share >= 1 else "")
    for k in range(n):
        line = words(rng, LATIN, rng.randint(8, 12))
        in_font = k < round(share * n)
        page.insert_text((60, 100 + 19 * k), line, fontsize=10.5, fontname=font if in_font else "helv")
        drawn.append(line if in_font else "")
    return " ".join(drawn)


def unmapped_font_doc(rng: random.Random) -> bytes:
    """Pages whose text is partly or wholly in a font without a ToUnicode map (U+FFFD when extracted)."""
    doc = bp.new_doc()
    for share in (1.0, 1.0, 0.6, 0.35, 0.15, 0.06):
        page = doc.new_page(width=bp.A4[0], height=bp.A4[1])
        _two_font_page(page, rng, share, bp.dejavu(page))
        fonts.drop_unicode_map(doc, page, bp.DV)
    return bp.save(doc)


def wrong_map_doc(rng: random.Random) -> bytes:
    """Pages whose font maps glyphs to the wrong code points: right on paper, mojibake in the layer."""
    doc = bp.new_doc()
    for share in (1.0, 1.0, 0.5, 0.25):
        page = doc.new_page(width=bp.A4[0], height=bp.A4[1])
        drawn = _two_font_page(page, rng, share, bp.dejavu(page))
        fonts.scramble_unicode_map(doc, page, bp.DV, drawn, _MOJIBAKE)
    return bp.save(doc)


def outlined_page(doc, page, rng: random.Random, i: int) -> None:
    """Prose drawn as glyph outlines (no text layer); pages 2 and 3 keep a real-text title."""
    height = page.rect.height
    ops = []
    for k in range(rng.randint(26, 34)):
        line = words(rng, LATIN, rng.randint(8, 11))
        ops.append(fonts.outline_ops(line, 60, height - (110 + 20 * k), 10.5)[0])
    fonts.append_content(doc, page, "q 0 g\n" + "\n".join(ops) + "\nQ\n")
    if i >= 2:
        page.insert_text((60, 80), words(rng, LATIN, 4).title(), fontsize=18, fontname="hebo")


def _chart(rng: random.Random):  # -> pymupdf.Pixmap: a bar chart with a title, tick labels and a legend
    doc = bp.new_doc()
    page = doc.new_page(width=500, height=380)
    page.insert_text((40, 30), words(rng, LATIN, 5).title(), fontsize=16)
    page.draw_line((50, 330), (480, 330), width=1)
    page.draw_line((50, 330), (50, 50), width=1)
    bars = rng.randint(5, 9)
    for b in range(bars):
        x = 60 + b * (410 / bars)
        top = 330 - rng.randint(30, 260)
        color = (rng.random(), rng.random(), rng.random())
        page.draw_rect((x, top, x + 410 / bars * 0.7, 330), color=color, fill=color)
        page.insert_text((x, 348), rng.choice(LATIN), fontsize=9)
    for t in range(5):
        page.insert_text((20, 333 - 60 * t), str(60 * t), fontsize=8)
    page.insert_text((300, 370), "legend: " + words(rng, LATIN, 3), fontsize=9)
    return page.get_pixmap(dpi=120)


def figure_page(doc, page, rng: random.Random, i: int) -> None:
    """A full-page figure (a chart with words in its pixels) and a one- or two-line caption."""
    share = (0.6, 0.7, 0.8, 0.9)[i]
    w, h = page.rect.width, page.rect.height
    fig_h = min(h - 140, share * w * h / (w - 60))
    page.insert_image((30, 50, w - 30, 50 + fig_h), pixmap=_chart(rng), keep_proportion=False)
    caption = f"Figure {i + 1}: " + sentences(rng, LATIN, rng.randint(8, 24))
    bp.textbox(page, (40, 60 + fig_h, w - 40, h - 20), caption, fontsize=9)
