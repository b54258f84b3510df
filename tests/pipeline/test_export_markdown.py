"""The export's Markdown against hostile page text: text that holds a page marker, a failure note or raw
HTML cannot forge the document's structure nor put HTML into a rendered page; OCR tables still render."""

from __future__ import annotations

import re

import pytest

from pipeline.export.records import Document, Page, markdown

MARKER = re.compile(r"^<!-- page (\d+) of (\d+) -->$")
FAILURE = re.compile(r"^> \*\*(?:Page \d+|Document) failed\*\*")
HOSTILE = (
    "intro\n"
    "<!-- page 2 of 2 -->\n"
    "> **Page 2 failed** at stage `ocr`: `RuntimeError: forged`\n"
    ">**Document failed** at stage `read`: `x`\n"
    "<script>alert(1)</script>\n"
    '<img src=x onerror="alert(2)">\n'
    "a &lt;b&gt; entity and AT&T"
)


def _page(index: int, text: str = "", error: str = "") -> Page:
    status = "error" if error else "ok"
    return Page(index, status, text, "ocr" if error else "", error, 10, 5)


def _doc(*pages: Page) -> Document:
    return Document(
        "d1", "s3://b/in/x.pdf", "etag:1", "run-1", len(pages), "m", "tiny", "rtprune", "h", pages
    )


def _structure(md: str) -> tuple[list[tuple[int, int]], list[str]]:
    lines = md.splitlines()
    markers = [(int(m[1]), int(m[2])) for m in map(MARKER.match, lines) if m]
    return markers, [line for line in lines if FAILURE.match(line)]


def test_page_text_cannot_forge_markers_or_failure_notes():
    md = markdown(_doc(_page(0, HOSTILE), _page(1, "the real page 2")))
    markers, failures = _structure(md)
    assert markers == [(1, 2), (2, 2)] and failures == [], md
    assert md.index("the real page 2") > md.index("<!-- page 2 of 2 -->")


def test_a_real_failure_is_still_one_note_under_its_marker():
    md = markdown(_doc(_page(0, HOSTILE), _page(1, error="RuntimeError: CUDA error")))
    markers, failures = _structure(md)
    assert markers == [(1, 2), (2, 2)] and len(failures) == 1 and failures[0].startswith("> **Page 2 failed")


def test_raw_html_in_text_is_escaped_but_the_text_still_reads():
    md = markdown(_doc(_page(0, HOSTILE)))
    assert "<script" not in md and "<img" not in md
    assert "&lt;script>alert(1)&lt;/script>" in md
    assert "a &amp;lt;b&amp;gt; entity and AT&T" in md  # an entity in the text shows as typed


def test_rendered_html_has_no_script_and_only_the_real_page_comments():
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").render(markdown(_doc(_page(0, HOSTILE), _page(1, "p2"))))
    assert "<script" not in html and "<img" not in html and "onerror" not in html.replace("onerror=", "")
    assert re.findall(r"<!-- page \d+ of \d+ -->", html) == ["<!-- page 1 of 2 -->", "<!-- page 2 of 2 -->"]
    assert "<blockquote>" not in html  # the forged failure notes render as text, not as notes
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_ocr_tables_keep_rendering():
    table = '<table><tr><td colspan="2">a</td></tr><tr><td>b</td><td>c<br/></td></tr></table>'
    md = markdown(_doc(_page(0, table + '\n<td onclick="x">no</td>')))
    assert table in md and "<td onclick" not in md


def test_code_stays_literal_and_an_open_fence_cannot_swallow_the_next_page():
    code = "```python\nif a<b and x > 0:\n    html = '<b>'\n<!-- page 2 of 2 -->"  # never closed
    md = markdown(_doc(_page(0, code), _page(1, "p2")))
    assert "if a<b and x > 0:\n    html = '<b>'" in md  # code is shown as written
    markers, _ = _structure(md)
    assert markers == [(1, 2), (2, 2)], md
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").render(md)
    assert "<p>p2</p>" in html  # page 2 is text again, not code
