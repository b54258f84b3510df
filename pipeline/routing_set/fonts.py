"""Font surgery for the routing set (pipeline/routing_set): text whose glyph-to-Unicode map is missing
or wrong, and text drawn as glyph outlines with no text layer at all. Fonts come from matplotlib's DejaVu
set (a dependency already, with Latin, Greek, Cyrillic, Arabic and math glyphs), outlines from fontTools."""

from __future__ import annotations

import functools
from pathlib import Path


def dejavu_path() -> Path:
    """DejaVuSans.ttf as shipped inside matplotlib: no download at run time."""
    import matplotlib

    return Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"


@functools.cache
def _dejavu():  # -> fontTools.ttLib.TTFont
    from fontTools.ttLib import TTFont

    return TTFont(str(dejavu_path()))


def _font_xref(page, fontname: str) -> int:
    return next(xref for xref, *_, name, _enc in page.get_fonts() if name == fontname)


def drop_unicode_map(doc, page, fontname: str) -> None:
    """Remove the ToUnicode map of the page's font `fontname` (inserted with insert_font): its glyphs then
    extract as U+FFFD, or as their glyph codes read as characters, as in PDFs whose fonts carry no map."""
    doc.xref_set_key(_font_xref(page, fontname), "ToUnicode", "null")


def _cmap_stream(pairs: list[tuple[int, int]]) -> bytes:
    """A ToUnicode CMap mapping 2-byte codes to BMP code points."""
    head = (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo <</Registry(Adobe)/Ordering(UCS)/Supplement 0>> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
    )
    body = ""
    for start in range(0, len(pairs), 100):  # at most 100 entries per section
        chunk = pairs[start : start + 100]
        body += f"{len(chunk)} beginbfchar\n"
        body += "".join(f"<{code:04x}> <{cp:04x}>\n" for code, cp in chunk) + "endbfchar\n"
    tail = "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    return (head + body + tail).encode()


def scramble_unicode_map(doc, page, fontname: str, text: str, targets: str) -> None:
    """Point the ToUnicode entries of every character of `text` (drawn in DejaVuSans under `fontname`) at
    wrong code points, drawn in turn from `targets`: the page still shows the right glyphs, its layer
    reads as mojibake (a broken font map from a converter)."""
    font = _dejavu()
    cmap = font.getBestCmap()
    pairs = {}
    for i, ch in enumerate(sorted(set(text) - {" "})):
        if ord(ch) in cmap:
            pairs[font.getGlyphID(cmap[ord(ch)])] = ord(targets[i % len(targets)])
    space = font.getGlyphID(cmap[ord(" ")])
    pairs[space] = 0x20
    tounicode = doc.xref_get_key(_font_xref(page, fontname), "ToUnicode")[1]
    doc.update_stream(int(tounicode.split()[0]), _cmap_stream(sorted(pairs.items())))


class _PdfPathPen:
    """A fontTools pen writing PDF path operators in glyph units (the caller scales and places them with a
    cm operator). TrueType's quadratic segments become the equivalent cubic ones."""

    def __init__(self) -> None:
        self.ops: list[str] = []
        self._last = (0.0, 0.0)

    @staticmethod
    def _xy(pt) -> str:
        return f"{pt[0]:.0f} {pt[1]:.0f}"

    def moveTo(self, pt) -> None:  # noqa: N802 (fontTools' pen protocol)
        self.ops.append(self._xy(pt) + " m")
        self._last = pt

    def lineTo(self, pt) -> None:  # noqa: N802
        self.ops.append(self._xy(pt) + " l")
        self._last = pt

    def curveTo(self, *pts) -> None:  # noqa: N802
        self.ops.append(" ".join(self._xy(p) for p in pts) + " c")
        self._last = pts[-1]

    def qCurveTo(self, *pts) -> None:  # noqa: N802
        from fontTools.pens.basePen import decomposeQuadraticSegment

        if pts[-1] is None:  # a closed contour of off-curve points only: not in DejaVu's text glyphs
            return
        for control, end in decomposeQuadraticSegment(pts):
            p0 = self._last
            c1 = (p0[0] + 2 / 3 * (control[0] - p0[0]), p0[1] + 2 / 3 * (control[1] - p0[1]))
            c2 = (end[0] + 2 / 3 * (control[0] - end[0]), end[1] + 2 / 3 * (control[1] - end[1]))
            self.curveTo(c1, c2, end)

    def closePath(self) -> None:  # noqa: N802
        self.ops.append("h")

    def endPath(self) -> None:  # noqa: N802
        pass

    def addComponent(self, glyph_name, transform) -> None:  # noqa: N802
        from fontTools.pens.transformPen import TransformPen

        _dejavu().getGlyphSet()[glyph_name].draw(TransformPen(self, transform))


@functools.cache
def _glyph(ch: str) -> tuple[str, int]:
    """(path operators in font units, advance width in font units) of one DejaVuSans character."""
    font = _dejavu()
    name = font.getBestCmap().get(ord(ch))
    if name is None:
        return "", 0
    pen = _PdfPathPen()
    if not ch.isspace():
        font.getGlyphSet()[name].draw(pen)
    return "\n".join(pen.ops), font["hmtx"].metrics[name][0]


def outline_ops(text: str, x: float, baseline_pdf_y: float, size_pt: float) -> tuple[str, float]:
    """PDF operators filling the outlines of `text` in DejaVuSans (one filled path per glyph, as
    "convert text to outlines" tools write them), starting at (x, baseline) in PDF space; returns the
    operators and the x after the last glyph."""
    scale = size_pt / _dejavu()["head"].unitsPerEm
    ops: list[str] = []
    for ch in text:
        path, advance = _glyph(ch)
        if path:
            ops.append(f"q {scale:.5f} 0 0 {scale:.5f} {x:.2f} {baseline_pdf_y:.2f} cm\n{path}\nf Q")
        x += advance * scale
    return "\n".join(ops), x


def append_content(doc, page, ops: str) -> None:
    """Add a content stream of raw PDF operators after the page's own."""
    xref = doc.get_new_xref()
    doc.update_object(xref, "<<>>")
    doc.update_stream(xref, ops.encode())
    refs = [*page.get_contents(), xref]
    doc.xref_set_key(page.xref, "Contents", "[" + " ".join(f"{x} 0 R" for x in refs) + "]")
