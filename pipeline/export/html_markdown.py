"""The Markdown a page's layout holds -> safe HTML, for the document viewer (no JavaScript, no network).

It renders what DeepSeek-OCR writes and nothing more: `#` headings, paragraphs, display formulas (shown as
their LaTeX source), HTML tables and figure links. Every piece of text is HTML-escaped; tables are rebuilt
from their cells (table, tr, th, td with numeric colspan and rowspan only), so no tag or attribute of the
model's output reaches the page as written; an image is shown only when its link is one the exporter
wrote (a figure copied beside the document).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

_PLACEHOLDER = re.compile(r"^<!-- figure \d+ -->$")  # a figure that was not cropped: nothing to show
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$", re.DOTALL)
_IMAGE = re.compile(r"^!\[[^\]]*\]\(([^)\s]*)\)$")
_TABLE = re.compile(r"<table\b.*?(?:</table>|$)", re.DOTALL | re.IGNORECASE)
_CELL_TAGS = {"td", "th"}
_SPAN_ATTRS = {"colspan", "rowspan"}


class _TableCells(HTMLParser):
    """An HTML table -> rows of cells (tag, text, spans), whatever else the markup holds."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[tuple[str, list[str], dict[str, str]]]] = []
        self._cell: tuple[str, list[str], dict[str, str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in _CELL_TAGS:
            spans = {k: v for k, v in attrs if k in _SPAN_ATTRS and v and v.isdigit() and int(v) <= 1000}
            if not self.rows:
                self.rows.append([])
            self._cell = (tag, [], spans)
            self.rows[-1].append(self._cell)
        elif tag == "br" and self._cell is not None:
            self._cell[1].append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _CELL_TAGS:
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[1].append(data)


def table_html(markup: str) -> str:
    """An HTML table from the model -> the same cells as a safe table (text escaped, spans kept)."""
    parser = _TableCells()
    parser.feed(markup)
    parser.close()
    rows = []
    for row in parser.rows:
        cells = []
        for tag, parts, spans in row:
            attrs = "".join(f' {k}="{v}"' for k, v in sorted(spans.items()))
            cells.append(f"<{tag}{attrs}>{_text(''.join(parts))}</{tag}>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table>{''.join(rows)}</table>"


def _text(text: str) -> str:
    """Escaped text, line breaks kept."""
    return html.escape(text.strip()).replace("\n", "<br>")


def _paragraph(chunk: str, images: dict[str, str]) -> str:
    if _PLACEHOLDER.match(chunk):
        return ""
    heading = _HEADING.match(chunk)
    if heading:
        level = len(heading.group(1))
        return f"<h{level}>{_text(heading.group(2))}</h{level}>"
    image = _IMAGE.match(chunk)
    if image:
        src = images.get(image.group(1))
        return f'<img class="figure" src="{html.escape(src)}" alt="">' if src else ""
    if chunk.startswith(("\\[", "$$")):
        return f'<pre class="math">{html.escape(chunk)}</pre>'
    if "<table" in chunk.lower():
        return _with_tables(chunk)
    return f"<p>{_text(chunk)}</p>"


def _with_tables(chunk: str) -> str:
    """Text around and between tables as paragraphs, each table rebuilt."""
    pieces, at = [], 0
    for match in _TABLE.finditer(chunk):
        before = chunk[at : match.start()].strip()
        pieces += [f"<p>{_text(before)}</p>"] if before else []
        pieces.append(table_html(match.group(0)))
        at = match.end()
    rest = chunk[at:].strip()
    return "".join(pieces + ([f"<p>{_text(rest)}</p>"] if rest else []))


def markdown_html(markdown: str, images: dict[str, str]) -> str:
    """A page's Markdown -> HTML, one element per blank-line separated chunk. `images`: the figure links the
    exporter wrote -> the src to show (any other image link is dropped)."""
    chunks = [c.strip() for c in re.split(r"\n\s*\n", markdown) if c.strip()]
    return "\n".join(p for p in (_paragraph(c, images) for c in chunks) if p)
