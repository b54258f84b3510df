"""Pure formatting of one committed document: its file name, its Markdown and its JSONL record.

No I/O here; run.py reads the committed rows and writes what these functions return."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

# Bump when the Markdown or JSONL format changes: every document's fingerprint changes with it, so the
# next export rewrites everything in the new format.
# 2: page text made inert in the Markdown (raw HTML escaped, markers and failure notes unforgeable),
# clean Markdown (layout tags removed), figures beside it, page layouts in JSONL.
FORMAT_VERSION = 2
# Between the texts of consecutive ok pages in a JSONL record's text (page_spans locate each page).
PAGE_SEPARATOR = "\n\n"
_SLUG_MAX = 60
# Page text in the Markdown (markdown_page_text): DeepSeek-OCR writes tables as HTML, so these tags pass,
# without attributes other than numeric spans (nothing in them can run or load); any other '<' that could
# open HTML (a tag, a comment, a declaration) becomes &lt;, and an entity the text spells out keeps
# showing as typed.
_TABLE_TAG = re.compile(
    r"</?(?:table|thead|tbody|tfoot|tr|th|td|br)(?:\s+(?:colspan|rowspan)=\"?\d{1,4}\"?)*\s*/?>",
    re.IGNORECASE,
)
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
# A quote line that reads like the export's own failure note ("> **Page 2 failed**"): its '>' is escaped.
_NOTE_LOOKALIKE = re.compile(r"^( {0,3})>(?=[\s>]*(?:\*\*|__)\s*(?:page|document)\b)", re.IGNORECASE)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


@dataclass(frozen=True)
class Page:
    index: int  # 0-based; -1 for a document-level error (the document could not be read or opened)
    status: str  # ok | error
    text: str
    error_stage: str
    error: str
    visual_tokens: int
    visual_tokens_kept: int
    markdown: str = ""  # the page's clean Markdown (figure links are figure keys of the output)
    blocks: tuple[dict[str, Any], ...] = ()  # BLOCK_TYPE records (pipeline/schema.py)
    width_pt: float = 0.0
    height_pt: float = 0.0

    @property
    def body(self) -> str:
        """What the page says: its clean Markdown (the raw text where no Markdown was stored)."""
        return self.markdown or self.text


@dataclass(frozen=True)
class Document:
    """One document's latest committed version: the rows of one commit, in page order."""

    doc_id: str
    source_uri: str
    content_hash: str
    run_id: str
    page_count: int  # -1 when the document could not be opened
    model_id: str
    model_mode: str
    prune_method: str
    prune_config_hash: str
    pages: tuple[Page, ...]

    @property
    def pages_ok(self) -> int:
        return sum(p.status == "ok" for p in self.pages)

    @property
    def pages_failed(self) -> int:
        return len(self.pages) - self.pages_ok


def fingerprint(doc_id: str, run_id: str, content_hash: str, setting: tuple[str, ...], rows: int) -> str:
    """Identity of a document's committed version: committed parts never change, so the same run, content,
    setting and row count means the same rows, and the export need not read or render them again."""
    key = json.dumps([FORMAT_VERSION, doc_id, run_id, content_hash, list(setting), rows])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def document_file_name(doc_id: str, source_uri: str) -> str:
    """`{slug}-{hash}.md`: a readable ASCII slug of the source's file name (for people browsing the folder)
    and 20 hex digits of sha256(doc_id) (for uniqueness). Only [a-z0-9-] and one '.md': safe on every file
    system and object store, case-insensitive ones included, whatever characters the name holds."""
    base = source_uri.rstrip("/").rsplit("/", 1)[-1]
    base = re.sub(r"\.pdf$", "", base, flags=re.IGNORECASE)
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name)[:_SLUG_MAX].strip("-") or "document"
    return f"{slug}-{hashlib.sha256(doc_id.encode()).hexdigest()[:20]}.md"


def relink(markdown: str, hrefs: dict[str, str]) -> str:
    """Markdown whose figure links are figure keys -> the same with each key in `hrefs` replaced."""
    for key, href in hrefs.items():
        markdown = markdown.replace(f"]({key})", f"]({href})")
    return markdown


def jsonl_record(doc: Document, added: str, figures: dict[str, str] | None = None) -> dict[str, Any]:
    """One record per document in the shape LLM data pipelines read (Dolma: id, text, source, added,
    metadata; datatrove's JsonlReader takes the same keys). `text` is the ok pages' clean Markdown joined
    by PAGE_SEPARATOR; metadata.page_spans holds [start, end, page_index] per ok page, so
    text[start:end] is that page's text (offsets in Unicode code points, as Python indexes str);
    metadata.pages holds each ok page's size and layout blocks. `figures`: figure key -> the path its
    links and blocks name instead (the copy beside the Markdown)."""
    figures = figures or {}
    parts: list[str] = []
    spans: list[list[int]] = []
    pos = 0
    for page in doc.pages:
        if page.status != "ok":
            continue
        if parts:
            pos += len(PAGE_SEPARATOR)
        text = relink(page.body, figures)
        spans.append([pos, pos + len(text), page.index])
        parts.append(text)
        pos += len(text)
    failed = [
        {"page_index": p.index, "stage": p.error_stage, "reason": p.error}
        for p in doc.pages
        if p.status != "ok"
    ]
    metadata = {
        "page_count": doc.page_count,
        "pages_ok": doc.pages_ok,
        "pages_failed": doc.pages_failed,
        "page_spans": spans,
        "failed_pages": failed,
        "content_hash": doc.content_hash,
        "run_id": doc.run_id,
        "model_id": doc.model_id,
        "model_mode": doc.model_mode,
        "prune_method": doc.prune_method,
        "prune_config_hash": doc.prune_config_hash,
        "visual_tokens": sum(p.visual_tokens for p in doc.pages),
        "visual_tokens_kept": sum(p.visual_tokens_kept for p in doc.pages),
        "pages": [_page_layout(p, figures) for p in doc.pages if p.status == "ok"],
        **{name: sum(b["kind"] == kind for p in doc.pages for b in p.blocks) for name, kind in _COUNTED},
        "export_format": FORMAT_VERSION,
    }
    text = PAGE_SEPARATOR.join(parts)
    return {"id": doc.doc_id, "text": text, "source": doc.source_uri, "added": added, "metadata": metadata}


_COUNTED = (("tables", "table"), ("formulas", "formula"), ("figures", "figure"))


def _page_layout(page: Page, figures: dict[str, str]) -> dict[str, Any]:
    """An ok page's size and blocks (boxes in PDF points and 0-999; figures as their copies' paths)."""
    blocks = [
        {
            "order": b["order"],
            "label": b["label"],
            "kind": b["kind"],
            "text": b["text"],
            "box_pt": b["box_pt"],
            "box_model": b["box_model"],
            "figure": figures.get(b["figure"], b["figure"]),
        }
        for b in page.blocks
    ]
    return {
        "page_index": page.index,
        "width_pt": page.width_pt,
        "height_pt": page.height_pt,
        "blocks": blocks,
    }


def page_marker(index: int, page_count: int) -> str:
    """The line that opens each page in the Markdown (1-based, as people count pages)."""
    return f"<!-- page {index + 1} of {page_count} -->"


def markdown(doc: Document, figures: dict[str, str] | None = None) -> str:
    """The document as Markdown: a short header, then every page in order, each opened by page_marker and
    separated by a rule; a failed page (or a document that failed as a whole) is a quoted line with its
    stage and reason, never dropped. `figures`: figure key -> the link written instead (relative to the
    Markdown file)."""
    name = doc.source_uri.rstrip("/").rsplit("/", 1)[-1] or doc.source_uri
    setting = f"{_code(doc.prune_method)}" + (
        f" [{_code(doc.prune_config_hash)}]" if doc.prune_config_hash else ""
    )
    lines = [
        f"# {_escape(_printable(name))}",
        "",
        f"- source: {_code(_printable(doc.source_uri))}",
        f"- document id: {_code(_printable(doc.doc_id))}",
        f"- pages: {doc.page_count} ({doc.pages_ok} ok, {doc.pages_failed} failed)"
        if doc.page_count >= 0
        else "- pages: unknown (the document could not be read or opened)",
        f"- model: {_code(doc.model_id)}"
        + (f" (mode {_code(doc.model_mode)})" if doc.model_mode else "")
        + f", pruning: {setting}",
        f"- run: {_code(doc.run_id)}",
        "",
    ]
    for i, page in enumerate(doc.pages):
        if page.index < 0:
            lines += [_failure("Document failed", page), ""]
            continue
        if i:
            lines += ["---", ""]
        lines += [page_marker(page.index, doc.page_count), ""]
        body = (
            markdown_page_text(relink(page.body, figures or {}))
            if page.status == "ok"
            else _failure(f"Page {page.index + 1} failed", page)
        )
        lines += [body, ""]
    return "\n".join(lines)


def markdown_page_text(text: str) -> str:
    """Page text as the Markdown shows it, made inert: raw HTML cannot reach a renderer (only table tags
    pass), and no line of it can be a page marker or a failure note, so the structure a reader splits
    on (`<!-- page N of M -->` lines) comes from the export alone. Inside a fenced code block the text
    stays as it is (a renderer shows it literally) but for a line opening a comment; a fence the page
    leaves open is closed at its end, so it cannot swallow the pages after it."""
    lines: list[str] = []
    fence = ""
    for line in text.split("\n"):
        opened = _FENCE.match(line)
        if not fence:
            lines.append(line if opened else _inert_line(line))
            fence = (
                opened.group(1)
                if opened and not (opened.group(1)[0] == "`" and "`" in opened.group(2))
                else ""
            )
            continue
        if (
            opened
            and opened.group(1)[0] == fence[0]
            and len(opened.group(1)) >= len(fence)
            and not opened.group(2).strip()
        ):
            fence = ""
        lines.append(re.sub(r"^(\s*)<!--", r"\1&lt;!--", line))
    if fence:
        lines.append(fence)
    return "\n".join(lines)


def _inert_line(line: str) -> str:
    line = _ENTITY.sub("&amp;", line)
    pieces, pos = [], 0
    for start in (m.start() for m in _HTML_START.finditer(line)):
        if start < pos:
            continue
        tag = _TABLE_TAG.match(line, start)
        pieces.append(line[pos:start] + (tag.group(0) if tag else "&lt;"))
        pos = tag.end() if tag else start + 1
    pieces.append(line[pos:])
    return _NOTE_LOOKALIKE.sub(r"\1\\>", "".join(pieces))


def _failure(what: str, page: Page) -> str:
    return f"> **{what}** at stage {_code(page.error_stage or 'unknown')}: {_code(_printable(page.error))}"


def _printable(text: str) -> str:
    """Control and format characters (newlines, bidi overrides, zero-width) as \\uXXXX escapes, so a name
    or an error message cannot break the Markdown's structure or hide what it says."""
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c)[0] == "C" else c for c in text)


def _code(text: str) -> str:
    """An inline code span that holds any text: the fence is longer than any run of backticks inside."""
    runs = re.findall(r"`+", text)
    fence = "`" * (max((len(r) for r in runs), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _escape(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>()#+\-.!|~])", r"\\\1", text)
