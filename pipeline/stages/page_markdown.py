"""A routed page's text layer as Markdown, built from the spans read_text_layer already holds: headings by
font size, paragraphs, list items. pymupdf4llm's to_markdown gives richer output (tables) but costs 0.1 to 7
seconds a page (layout model or table search), against a few milliseconds here (benchmarks/
bench_page_features.py prints both); plain_text gives the page's text as PyMuPDF's get_text would."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pipeline.stages.page_features import TextLayer, read_text_layer

HEADING_SIZE_RATIO = 1.15  # a block whose every line is this much larger than the body text is a heading
HEADING_MAX_LINES = 3
_BOLD = 16  # PyMuPDF span flag
_BULLET = re.compile(r"^\s*[•·◦▪▫‣⁃●○■□–—*\ufffd-]\s+")  # U+FFFD: a bullet whose font has no map
_NUMBERED = re.compile(r"^\s*(\(?\d{1,3}[.)]|[a-z][.)])\s+")


def _line_text(line: dict[str, Any]) -> str:
    return "".join(span["text"] for span in line["spans"]).strip()


def _line_size(line: dict[str, Any]) -> float:
    return max((span["size"] for span in line["spans"] if span["text"].strip()), default=0.0)


def _body_size(blocks: list[dict[str, Any]]) -> float:
    """The font size that carries the most characters."""
    sizes: Counter[float] = Counter()
    for block in blocks:
        for line in block["lines"]:
            for span in line["spans"]:
                sizes[round(span["size"] * 2) / 2] += len(span["text"].strip())
    return sizes.most_common(1)[0][0] if sizes else 0.0


def _heading_size(block: dict[str, Any], body_size: float) -> float:
    """The block's font size if it reads as a heading, else 0."""
    lines = [line for line in block["lines"] if _line_text(line)]
    if not lines or len(lines) > HEADING_MAX_LINES or body_size <= 0:
        return 0.0
    size = min(_line_size(line) for line in lines)
    return size if size >= body_size * HEADING_SIZE_RATIO else 0.0


def _joined(previous: str, line: str) -> str:
    if not previous:
        return line
    if previous.endswith("-") or (ord(previous[-1]) >= 0x3000 and ord(line[0]) >= 0x3000):
        return previous + line  # a hyphen at the break, or CJK, which puts no space between lines
    return previous + " " + line


def _items(block: dict[str, Any]) -> list[str]:
    """The block's lines joined into paragraphs, a new item at each list marker (a marker that stands on
    a line of its own, as when a bullet is drawn apart from its text, opens an item too)."""
    items: list[str] = []
    for line in block["lines"]:
        text = _line_text(line)
        if not text:
            continue
        bullet = _BULLET.match(text + " ")
        if bullet:
            items.append("- " + text[bullet.end() :])
        elif _NUMBERED.match(text) or not items:
            items.append(text)
        elif items[-1] == "- ":
            items[-1] += text
        else:
            items[-1] = _joined(items[-1], text)
    return items


def _paragraphs(block: dict[str, Any]) -> list[str]:
    """A text block as Markdown: one paragraph (bold when every span is), or a list."""
    items = _items(block)
    spans = [span for line in block["lines"] for span in line["spans"] if span["text"].strip()]
    if len(items) == 1 and not items[0].startswith("- ") and all(span["flags"] & _BOLD for span in spans):
        return [f"**{items[0]}**"]
    is_list = len(items) > 1 or bool(items and items[0].startswith("- "))
    return ["\n".join(items)] if is_list else items


def layer_markdown(layer: TextLayer) -> str:
    """The page's text layer as Markdown (blocks in the order the page draws them)."""
    blocks = layer.text_blocks
    body = _body_size(blocks)
    sizes = {id(b): _heading_size(b, body) for b in blocks}
    levels = {
        size: rank + 1 for rank, size in enumerate(sorted({s for s in sizes.values() if s}, reverse=True))
    }
    parts: list[str] = []
    for block in blocks:
        size = sizes[id(block)]
        if size:
            title = " ".join(t for t in (_line_text(line) for line in block["lines"]) if t)
            parts.append("#" * min(levels[size], 4) + " " + title)
        else:
            parts.extend(_paragraphs(block))
    return "\n\n".join(p for p in parts if p)


def plain_text(layer: TextLayer) -> str:
    """The page's text, one text line per line: what get_text("text") gives, except that ligatures are
    expanded and an unmapped glyph is U+FFFD rather than its glyph code read as a character."""
    return "".join(
        "".join(span["text"] for span in line["spans"]) + "\n"
        for block in layer.text_blocks
        for line in block["lines"]
    )


def text_layer_markdown(doc, page_index: int, layer: TextLayer | None = None) -> str:
    """Markdown of page `page_index` of an open pymupdf.Document, from `layer` when it was already read."""
    return layer_markdown(layer if layer is not None else read_text_layer(doc[page_index]))
