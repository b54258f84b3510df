"""The document viewer and its Markdown rendering: every text escaped, tables rebuilt from their cells,
only the exporter's own figure links shown; and in a real headless Chromium, each block's box drawn in its
kind's colour where its 0-999 box says, the figure inside its box, no script run."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from PIL import Image
from viewer_fixtures import (
    BLOCKS,
    FIGURE_KEY,
    FIGURE_RGB,
    SCRIPT,
    chromium,
    document,
    hostile_page,
    page,
    screenshot,
)

from pipeline.export.html_markdown import markdown_html, table_html
from pipeline.export.viewer import (
    BOX_BORDER_PX,
    GAP_PX,
    HEADER_PX,
    KIND_COLOURS,
    SHEET_PX,
    sheet_height_px,
    viewer_html,
)


class _Elements(HTMLParser):
    """Every element of a page: (tag, attribute names)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, set[str]]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {name for name, _ in attrs}))


def test_every_text_is_escaped_and_no_script_or_handler_survives():
    html = viewer_html(document(hostile_page(0), page(1, BLOCKS)), {})
    parser = _Elements()
    parser.feed(html)
    tags = {tag for tag, _ in parser.found}
    assert "script" not in tags and tags <= {
        *("html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "div", "span"),
        *("section", "a", "p", "br", "table", "tr", "td", "img"),
    }
    assert not [attrs for _, attrs in parser.found if any(a.startswith("on") for a in attrs)]
    assert "&lt;script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html  # shown, as text
    assert "default-src 'none'" in html  # and the page's policy forbids scripts outright


def test_tables_keep_their_cells_and_spans_only():
    markup = '<table><tr><td colspan="2" style="x" onclick="y">a&amp;<b>b</b></td></tr><tr><td rowspan="x">c<br>d</td></tr></table>'
    assert (
        table_html(markup) == '<table><tr><td colspan="2">a&amp;b</td></tr><tr><td>c<br>d</td></tr></table>'
    )


def test_markdown_headings_formulas_placeholders_and_foreign_images():
    md = "## Sub <i>\n\n<!-- figure 3 -->\n\n\\[ a<b \\]\n\n![](figures/x.png)\n\n![](https://evil/x.png)\n\nplain"
    got = markdown_html(md, {"figures/x.png": "doc/p0001-b003.png"})
    assert got.split("\n") == [
        "<h2>Sub &lt;i&gt;</h2>",
        '<pre class="math">\\[ a&lt;b \\]</pre>',
        '<img class="figure" src="doc/p0001-b003.png" alt="">',
        "<p>plain</p>",
    ]


def test_a_page_without_layout_shows_its_markdown_and_a_failed_page_its_reason():
    legacy = page(0, ())
    legacy = type(legacy)(0, "ok", "raw text", "", "", 1, 1, "", (), 0.0, 0.0)
    failed = type(legacy)(1, "error", "", "ocr", "engine <died>", 1, 1)
    html = viewer_html(document(legacy, failed), {})
    assert "<p>raw text</p>" in html and "engine &lt;died&gt;" in html


def _near(image: Image.Image, x: float, y: float, rgb: tuple[int, int, int], reach: int = 2) -> bool:
    """Whether a pixel within `reach` of (x, y) has the colour `rgb` (within 6 per channel)."""
    for dx in range(-reach, reach + 1):
        for dy in range(-reach, reach + 1):
            px = image.getpixel((round(x) + dx, round(y) + dy))
            if all(abs(a - b) <= 6 for a, b in zip(px[:3], rgb, strict=True)):
                return True
    return False


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


@pytest.mark.skipif(
    chromium() is None, reason="needs Chromium (apt-get install chromium; .ci/run installs it)"
)
def test_the_boxes_are_drawn_where_the_layout_says_in_a_real_browser(tmp_path):
    folder = tmp_path / "markdown"
    (folder / "doc").mkdir(parents=True)
    Image.new("RGB", (40, 30), FIGURE_RGB).save(folder / "doc" / "p0001-b001.png")
    drawn = page(0, BLOCKS)
    (folder / "doc.html").write_text(
        viewer_html(document(drawn, hostile_page(1)), {FIGURE_KEY: "doc/p0001-b001.png"}), encoding="utf-8"
    )
    shot = tmp_path / "shot.png"
    screenshot(folder / "doc.html", shot, (1200, 900), tmp_path / "profile")
    image = Image.open(shot).convert("RGB")
    left, top, height = GAP_PX, HEADER_PX + GAP_PX, sheet_height_px(drawn)  # the first page's sheet
    for block in BLOCKS:
        x0, y0, x1, y1 = (v / 999 for v in block["box_model"])
        colour = _rgb(KIND_COLOURS[block["kind"]])
        middle_y = top + height * (y0 + y1) / 2
        edge = BOX_BORDER_PX / 2
        assert _near(image, left + SHEET_PX * x0 + edge, middle_y, colour), block["kind"]  # left border
        assert _near(image, left + SHEET_PX * x1 - edge, middle_y, colour), block["kind"]  # right border
        assert not _near(image, left + SHEET_PX * x0 - 6, middle_y, colour, reach=1)  # and not beside it
    fx0, fy0, fx1, fy1 = (v / 999 for v in BLOCKS[1]["box_model"])
    figure_centre = (left + SHEET_PX * (fx0 + fx1) / 2, top + height * (fy0 + fy1) / 2)
    assert _near(image, *figure_centre, FIGURE_RGB)  # the copied figure, shown in its box
    assert image.getpixel((1190, 890)) == (0xF4, 0xF4, 0xF4)  # the body background: no script ran
    assert SCRIPT not in (folder / "doc.html").read_text(encoding="utf-8")
