"""Born-digital pages of the routing set (pipeline/routing_set): prose in Latin, Cyrillic and Greek,
CJK, Arabic, inline math; forms, rotated pages, pages with a figure or on a background image, near-empty
pages. Each builder draws one page: build(doc, page, rng, index). Scans and broken layers: scans.py;
the words: words.py."""

from __future__ import annotations

import random

from pipeline.routing_set.fonts import dejavu_path, drop_unicode_map
from pipeline.routing_set.words import ARABIC, CJK, CYRILLIC, GREEK, LATIN, MATH, sentences, words

A4 = (595.0, 842.0)
DV = "dv"  # the name DejaVuSans gets on a page (Latin, Greek, Cyrillic, Arabic, math)
ORNAMENT = "orn"  # DejaVuSansMono for list bullets, its Unicode map removed


def new_doc():  # -> pymupdf.Document
    import pymupdf

    return pymupdf.open()


def save(doc) -> bytes:
    """Deterministic bytes: no fresh file /ID, unused objects dropped, streams compressed."""
    return doc.tobytes(garbage=3, deflate=True, no_new_id=True)


def textbox(page, rect, text: str, **kw) -> None:
    """insert_textbox writes nothing when the text overflows: drop words until it fits."""
    import pymupdf

    parts = text.split(" ")
    while parts and page.insert_textbox(pymupdf.Rect(rect), " ".join(parts), **kw) < 0:
        parts = parts[: int(len(parts) * 0.85)]


def dejavu(page) -> str:
    page.insert_font(fontname=DV, fontfile=str(dejavu_path()))
    return DV


def latin_page(doc, page, rng: random.Random, i: int, render_mode: int = 0) -> None:
    """A heading, paragraphs, sometimes a list, a page number; one of four fonts, 1 or 2 columns."""
    font = ("helv", "tiro", "cour", "helv")[i % 4]
    size = rng.choice((9, 10, 10.5, 11, 12))
    w, h = page.rect.width, page.rect.height
    page.insert_text((60, 80), words(rng, LATIN, 4).title(), fontsize=size * 1.7, fontname="hebo",
                     render_mode=render_mode)  # fmt: skip
    columns = 1 + (i % 3 == 1)
    col_w = (w - 120 - 20 * (columns - 1)) / columns
    for c in range(columns):
        x0 = 60 + c * (col_w + 20)
        body = sentences(rng, LATIN, rng.randint(150, 260) // columns)
        textbox(
            page, (x0, 110, x0 + col_w, h - 260), body, fontsize=size, fontname=font, render_mode=render_mode
        )
    y = h - 230
    ornament = i % 2 == 1  # list bullets in a font whose map was lost: a few U+FFFD, the text still exact
    if ornament:
        page.insert_font(fontname=ORNAMENT, fontfile=str(dejavu_path().with_name("DejaVuSansMono.ttf")))
    for k in range(rng.randint(2, 5)):
        item = words(rng, LATIN, rng.randint(3, 8))
        if ornament:
            page.insert_text((62, y), "•", fontsize=size, fontname=ORNAMENT, render_mode=render_mode)
        marker = "" if ornament else f"{k + 1}. "
        page.insert_text((80, y), marker + item, fontsize=size, fontname=font, render_mode=render_mode)
        y += size * 1.5
    if ornament:
        drop_unicode_map(doc, page, ORNAMENT)
    page.insert_text((w / 2 - 6, h - 40), str(i + 1), fontsize=9, render_mode=render_mode)


def cyrillic_greek_page(doc, page, rng: random.Random, i: int, render_mode: int = 0) -> None:
    """Russian or Greek prose under a Latin heading, in DejaVuSans."""
    font = dejavu(page)
    vocab = CYRILLIC if i % 2 == 0 else GREEK
    page.insert_text(
        (60, 80), words(rng, LATIN, 3).title(), fontsize=18, fontname=font, render_mode=render_mode
    )
    body = sentences(rng, vocab, 220) + "\n\n" + sentences(rng, vocab, 120)
    textbox(page, (60, 110, 535, 760), body, fontsize=10.5, fontname=font, render_mode=render_mode)


def cjk_page(doc, page, rng: random.Random, i: int) -> None:
    """Lines of Chinese, Japanese or Korean (MuPDF's built-in CJK fonts), a few Latin terms mixed in."""
    font = tuple(CJK)[i % 4]
    vocab = CJK[font] + ["GPU", "PDF", "2024"]
    sep = " " if font == "korea" else ""
    y = 80.0
    page.insert_text((60, y), words(rng, CJK[font], 3, sep), fontsize=18, fontname=font)
    for _ in range(rng.randint(24, 34)):
        y += 20
        page.insert_text((60, y), words(rng, vocab, 12, sep) + "。", fontsize=12, fontname=font)


def arabic_page(doc, page, rng: random.Random, i: int) -> None:
    """Right-to-left Arabic, shaped by MuPDF's HTML layout with DejaVuSans."""
    import pymupdf

    folder = dejavu_path().parent
    css = f"@font-face {{font-family: dv; src: url({dejavu_path().name});}} body {{font-family: dv;}}"
    html = f"<h2 dir='rtl'>{words(rng, ARABIC, 3)}</h2>" + "".join(
        f"<p dir='rtl'>{sentences(rng, ARABIC, rng.randint(40, 70))}</p>" for _ in range(4)
    )
    page.insert_htmlbox(pymupdf.Rect(60, 60, 535, 780), html, css=css, archive=pymupdf.Archive(str(folder)))


def math_page(doc, page, rng: random.Random, i: int) -> None:
    """Prose with inline formulas: Greek letters, operators, sub- and superscripts."""
    font = dejavu(page)
    page.insert_text((60, 80), f"Lemma {i + 1}", fontsize=16, fontname=font)
    parts = []
    for _ in range(rng.randint(10, 16)):
        parts.append(words(rng, LATIN, rng.randint(5, 12)).capitalize() + " " + rng.choice(MATH) + ".")
    textbox(page, (60, 110, 535, 780), " ".join(parts), fontsize=11, fontname=font)


def form_page(doc, page, rng: random.Random, i: int) -> None:
    """Labels, boxes, filled values, check boxes; the last page's values sit in form fields (widgets)."""
    import pymupdf

    page.insert_text((60, 70), f"Application form {rng.randint(100, 999)}", fontsize=16, fontname="hebo")
    y = 110.0
    for k in range(rng.randint(8, 12)):
        label = words(rng, LATIN, 2).title() + ":"
        box = pymupdf.Rect(200, y - 14, 520, y + 6)
        page.insert_text((60, y), label, fontsize=10)
        page.draw_rect(box, color=(0, 0, 0), width=0.7)
        value = words(rng, LATIN, rng.randint(1, 4))
        if i == 3:
            widget = pymupdf.Widget()
            widget.field_type, widget.field_name = pymupdf.PDF_WIDGET_TYPE_TEXT, f"field{k}"
            widget.rect, widget.field_value = box, value
            page.add_widget(widget)
        else:
            page.insert_text((204, y), value, fontsize=10)
        y += 34
    for k in range(4):
        box = pymupdf.Rect(60, y + k * 22, 70, y + k * 22 + 10)
        page.draw_rect(box, color=(0, 0, 0), width=0.7)
        if rng.random() < 0.5:
            page.insert_text((61.5, box.y1 - 1.5), "X", fontsize=9)
        page.insert_text((80, box.y1), words(rng, LATIN, 3), fontsize=10)
    page.draw_line((60, 760), (260, 760), width=0.7)
    page.insert_text((60, 775), "Signature", fontsize=8)


def rotated_page(doc, page, rng: random.Random, i: int) -> None:
    """Prose on a page turned by /Rotate, or (the last) a landscape table drawn rotated on a portrait page."""
    if i == 3:
        y = 100.0
        for _ in range(14):
            page.insert_text((y, 760), words(rng, LATIN, 9), fontsize=11, rotate=90)
            y += 28
        return
    latin_page(doc, page, rng, i)
    page.set_rotation((90, 180, 270)[i])


def picture(rng: random.Random, width_px: int, height_px: int, pale: bool = False):  # -> pymupdf.Pixmap
    """A small random colour field (no text in it), scaled up by the viewer: a photo or a background."""
    import pymupdf

    low = 200 if pale else 0
    samples = bytes(rng.randint(low, 255) for _ in range(width_px * height_px * 3))
    return pymupdf.Pixmap(pymupdf.csRGB, width_px, height_px, samples, False)


def figure_beside_text_page(doc, page, rng: random.Random, i: int) -> None:
    """Prose with a photo-like image covering 8 to 30 percent of the page."""
    share = (0.08, 0.15, 0.22, 0.30)[i]
    w, h = page.rect.width, page.rect.height
    img_h = share * w * h / (w - 120)
    page.insert_image((60, h - 60 - img_h, w - 60, h - 60), pixmap=picture(rng, 32, 24))
    page.insert_text((60, 80), words(rng, LATIN, 4).title(), fontsize=18, fontname="hebo")
    textbox(page, (60, 100, w - 60, h - 80 - img_h), sentences(rng, LATIN, 300), fontsize=10.5)


def vector_chart_page(doc, page, rng: random.Random, i: int) -> None:
    """Prose above a scatter plot drawn in vectors: 120 to 560 small filled markers (not glyphs), with
    real-text axis labels."""
    w, h = page.rect.width, page.rect.height
    page.insert_text((60, 80), words(rng, LATIN, 4).title(), fontsize=18, fontname="hebo")
    textbox(page, (60, 100, w - 60, 430), sentences(rng, LATIN, 200), fontsize=10.5)
    x0, y0, x1, y1 = 90, 460, w - 60, h - 90
    shape = page.new_shape()
    shape.draw_polyline([(x0, y0), (x0, y1), (x1, y1)])
    shape.finish(color=(0, 0, 0), width=0.8)
    for _ in range((120, 260, 400, 560)[i]):
        shape.draw_circle((rng.uniform(x0 + 5, x1 - 5), rng.uniform(y0 + 5, y1 - 5)), rng.uniform(1.2, 2.5))
        shape.finish(color=None, fill=(0.1, 0.2, 0.7))
    shape.commit()
    for t in range(6):
        page.insert_text((x0 - 24, y1 - t * (y1 - y0) / 5 + 3), f"{t * 20}", fontsize=8)
    page.insert_text(((x0 + x1) / 2 - 30, h - 60), words(rng, LATIN, 2) + " (s)", fontsize=9)


def background_page(doc, page, rng: random.Random, i: int) -> None:
    """A slide: a pale full-page background image under a title and bullet points."""
    page.insert_image(page.rect, pixmap=picture(rng, 24, 32, pale=True))
    page.insert_text((60, 90), words(rng, LATIN, 4).title(), fontsize=26, fontname="hebo")
    for k in range(rng.randint(6, 10)):
        page.insert_text((70, 150 + 40 * k), "• " + words(rng, LATIN, rng.randint(5, 9)), fontsize=16)


def near_empty_page(doc, page, rng: random.Random, i: int) -> None:
    """Blank, a page number alone, a "left blank" notice, a lone heading: nothing for OCR to add."""
    w, h = page.rect.width, page.rect.height
    if i == 1:
        page.insert_text((w / 2 - 10, h - 40), f"- {rng.randint(2, 300)} -", fontsize=9)
    elif i == 2:
        page.insert_text((w / 2 - 110, h / 2), "This page intentionally left blank.", fontsize=12)
    elif i == 3:
        page.insert_text((60, 90), "Appendix " + "ABCD"[rng.randint(0, 3)], fontsize=20, fontname="hebo")
