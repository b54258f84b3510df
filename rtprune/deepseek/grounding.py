"""DeepSeek-OCR grounding output -> blocks (label, boxes, Markdown) and the page's clean Markdown.

With the prompt `<image>\\n<|grounding|>Convert the document to markdown.`, v1 and OCR-2 answer block by
block: `<|ref|>LABEL<|/ref|><|det|>[[x0, y0, x1, y1], ...]<|/det|>` then the block's Markdown, blocks
separated by blank lines. Boxes are in the model frame: integers 0-999 over the page (see geometry.py and
docs/structured_pages.md). Pure Python (re, zlib): no torch, linear-time patterns, never raises on any
string.

Real outputs break the grammar (tests/data/grounding/ holds published ones): a det with LaTeX inside and no
`<|/det|>`, a ref without `<|/ref|>`, junk between the tags, coordinates of -1 or 1100, boxes of zero
area, blocks repeated in a loop, text cut at the token cap. Every such block is kept with what could be
read, and flagged; nothing of the text is dropped but the tags.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, replace

REF, REF_END, DET, DET_END = "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>"
_TAGS = (REF, REF_END, DET, DET_END)
# Tags left over where the grammar broke, the echoed prompt tag, and the end-of-sentence token (it is
# in the text when the engine decodes special tokens).
_STRAY = re.compile(r"<\|/?(?:ref|det)\|>|<\|grounding\|>|<｜end▁of▁sentence｜>|<\|end▁of▁sentence\|>")
_NUMBER = r"\s*(-?\d+(?:\.\d*)?)\s*"
_BOX = re.compile(r"\[" + ",".join([_NUMBER] * 4) + r"\]")
_COORD_CHARS = re.compile(r"[\s\d,.\-\[\]]*")  # what a det body may hold; the rest is text that leaked in
_LABEL_RUN = re.compile(r"\s*([A-Za-z_]+)")
# The tags decoded as special tokens and dropped (skip_special_tokens=True) leave `label[[x0, ...]]` at the
# start of a line; only known labels count, so text that happens to hold `[[1, 2, 3, 4]]` is not split.
_STRIPPED = re.compile(
    r"(?m)^(title|sub_title|text|table|table_caption|table_footnote|image|image_caption|equation|formula)"
    r"(\[\[[\d\s,\[\]\-]*\]\])"
)
# `\[` opens display math, but `\\[2pt]` is a LaTeX line break with spacing: not preceded by a backslash.
_DISPLAY_OPEN, _DISPLAY_CLOSE = re.compile(r"(?<!\\)\\\["), re.compile(r"(?<!\\)\\\]")
_CENTER = re.compile(r"</?center>")
_BLANK_RUNS = re.compile(r"\n{3,}")
_TABLE_MARKUP = re.compile(r"</?(?:td|tr|th|table|br)\b[^>]*>")
_SPACES = re.compile(r"\s+")
_FIGURE_PLACEHOLDER = re.compile(r"<!-- figure (\d+) -->")

MODEL_MAX = 999  # boxes are normalised to 0..999 on both axes
_MAX_HEADER_JUNK = 40  # characters between `<|/ref|>` and `<|det|>` still read as one broken header
_MIN_REPEAT_CHARS = 8  # shorter block texts ("a)", "Lösung:") repeat on real pages
# A block loops when its last 1000 characters compress below 0.15 of their size. On 1091 real v1 pages
# (docs/structured_pages.md) every loop seen by eye compresses to 0.065-0.142, no sound block below 0.16.
_LOOP_TAIL_CHARS, _LOOP_MIN_CHARS, _LOOP_MAX_RATIO = 1000, 400, 0.15

KINDS: dict[str, str] = {
    "title": "heading",
    "sub_title": "heading",
    "text": "text",
    "table": "table",
    "equation": "formula",
    "formula": "formula",
    "image": "figure",
    "figure": "figure",
    "image_caption": "caption",
    "table_caption": "caption",
    "table_footnote": "footnote",
}

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Block:
    """One ref of the output, in output order.

    label: the ref's label as written (stripped); "" for text outside any ref or a Free OCR page.
    boxes: (x0, y0, x1, y1) in the 0-999 model frame, clamped and ordered (x0 <= x1, y0 <= y1); a ref can
      carry several, or none when its det is missing or unreadable.
    text: the block's Markdown (headings, paragraphs, HTML tables, LaTeX) without the tags.
    clamped: a coordinate was outside 0-999 or a box was reversed, and was corrected.
    malformed: the tags around this block broke the grammar (unclosed, missing, junk inside).
    repeated: same label and text as an earlier block, with no box of its own (missing, zero-area or the
      earlier block's): what a decoding loop writes.
    """

    order: int
    label: str
    boxes: tuple[Box, ...]
    text: str
    clamped: bool = False
    malformed: bool = False
    repeated: bool = False

    @property
    def kind(self) -> str:
        """heading | text | table | formula | figure | caption | footnote | other (KINDS by label)."""
        if not self.label:
            return "text"
        return KINDS.get(self.label.lower(), "other")


@dataclass(frozen=True)
class ParsedPage:
    """A page's blocks and what went wrong reading them.

    format: grounding (tags) | stripped (labels and boxes whose tags were decoded away) | plain (no layout:
      a Free OCR answer, or a grounding prompt answered without tags) | empty.
    parsed: the output read as grounding and at least one block has a box. False for plain and empty
      pages: `markdown` is then the text as it came.
    truncated: the last block was cut (the caller says generation hit the token cap, or the text ends
      inside a tag, a table or a display formula).
    looped: the output repeats itself (repeated blocks, or a last block whose lines cycle).
    """

    blocks: tuple[Block, ...] = ()
    format: str = "empty"
    truncated: bool = False
    looped: bool = False

    @property
    def markdown(self) -> str:
        """The page's clean Markdown, figures as placeholders (page_markdown with no links)."""
        return page_markdown(self)

    @property
    def parsed(self) -> bool:
        return self.format in ("grounding", "stripped") and any(b.boxes for b in self.blocks)

    @property
    def clamped(self) -> bool:
        return any(b.clamped for b in self.blocks)

    @property
    def malformed_blocks(self) -> int:
        return sum(b.malformed for b in self.blocks)

    @property
    def repeated_blocks(self) -> int:
        return sum(b.repeated for b in self.blocks)

    def count(self, kind: str) -> int:
        return sum(b.kind == kind for b in self.blocks)

    @property
    def n_tables(self) -> int:
        return self.count("table")

    @property
    def n_formulas(self) -> int:
        return self.count("formula")

    @property
    def n_figures(self) -> int:
        return self.count("figure")

    def figures(self) -> tuple[Block, ...]:
        """The figure blocks (label image/figure) with a box: the ones a caller can crop."""
        return tuple(b for b in self.blocks if b.kind == "figure" and b.boxes)


def parse_grounding(text: str, *, hit_token_cap: bool = False) -> ParsedPage:
    """Read one page's raw model output. Never raises.

    hit_token_cap: generation stopped at max_new_tokens (finish_reason "length"), so the last block is cut
    whatever it looks like.
    """
    raw = _strip_end_of_sentence(text)
    fmt = _detect_format(raw)
    if fmt == "empty":
        return ParsedPage(format=fmt, truncated=hit_token_cap)
    if fmt == "plain":
        block = Block(0, "", (), _remove_stray_tags(raw)[0].strip())
        truncated = hit_token_cap or _ends_inside_tag(raw) or _ends_open(block.text)
        return ParsedPage((block,), fmt, truncated, _text_loops(block.text))
    if fmt == "stripped":
        raw = _STRIPPED.sub(lambda m: f"{REF}{m.group(1)}{REF_END}{DET}{m.group(2)}{DET_END}", raw)
    head, *segments = raw.split(REF)
    head_text, n_stray = _remove_stray_tags(head)
    blocks = [Block(0, "", (), head_text.strip(), malformed=n_stray > 0)] if head_text.strip() else []
    header_cut = False
    for segment in segments:
        block, header_cut = _read_segment(segment, len(blocks))
        if block.text or block.boxes:
            blocks.append(block)
    blocks = _mark_repeats(blocks)
    truncated = hit_token_cap or header_cut or _ends_inside_tag(raw) or _last_block_cut(blocks)
    return ParsedPage(tuple(blocks), fmt, truncated, _looped(blocks))


def _strip_end_of_sentence(text: str) -> str:
    return text.replace("<｜end▁of▁sentence｜>", "").replace("<|end▁of▁sentence|>", "")


def _detect_format(raw: str) -> str:
    if REF in raw:
        return "grounding"
    if _STRIPPED.search(raw):
        return "stripped"
    return "plain" if raw.strip() else "empty"


def _read_segment(segment: str, order: int) -> tuple[Block, bool]:
    """The text between one `<|ref|>` and the next -> (block, whether the output stops inside its header:
    tags left open and nothing written after them)."""
    label, rest, label_ok = _split_label(segment)
    boxes, clamped, text, det_ok = _split_det(rest)
    text, n_stray = _remove_stray_tags(text)
    block = Block(
        order=order,
        label=label,
        boxes=boxes,
        text=text.strip(),
        clamped=clamped,
        malformed=not (label_ok and det_ok) or n_stray > 0,
    )
    return block, not (label_ok and det_ok) and not block.text and DET_END not in segment


def _remove_stray_tags(text: str) -> tuple[str, int]:
    """Remove leftover tags until none is left (removing `<|det|>` from `<|re<|det|>f|>` makes a new one)."""
    total = 0
    while True:
        text, n = _STRAY.subn("", text)
        if not n:
            return text, total
        total += n


def _split_label(segment: str) -> tuple[str, str, bool]:
    """-> (label, what follows the label, whether `<|/ref|>` closed it before any det)."""
    end, det = segment.find(REF_END), segment.find(DET)
    if end >= 0 and (det < 0 or end < det) and _short_line(segment[:end]):
        return _remove_stray_tags(segment[:end])[0].strip(), segment[end + len(REF_END) :], True
    if det >= 0 and _short_line(segment[:det]):
        return _remove_stray_tags(segment[:det])[0].strip(), segment[det:], False
    match = _LABEL_RUN.match(segment)  # `<|ref|>equation\r\n\[ ...`: the label runs up to the first non-word
    if match is None:
        return "", segment, False
    return match.group(1), segment[match.end() :], False


def _short_line(text: str) -> bool:
    """Short enough, and on one line, to be (part of) a block header rather than its text."""
    return len(text) <= _MAX_HEADER_JUNK and "\n" not in text


def _split_det(rest: str) -> tuple[tuple[Box, ...], bool, str, bool]:
    """What follows the label -> (boxes, clamped, the block's text, whether the det was well formed)."""
    start = rest.find(DET)
    junk = rest[:start] if start >= 0 else ""
    if start < 0 or not _short_line(junk):
        return (), False, rest, False
    body_at = start + len(DET)
    end = rest.find(DET_END, body_at)
    body = rest[body_at:end] if end >= 0 else rest[body_at:]
    after = rest[end + len(DET_END) :] if end >= 0 else ""
    match = _COORD_CHARS.match(body)  # always matches (possibly empty)
    coords = match.group(0) if match else ""
    boxes, clamped = _read_boxes(coords)
    leaked = body[len(coords) :]  # `<|det|>[[110, \frac{1}{...}`: the block's text ran into the det
    well_formed = end >= 0 and not leaked.strip() and not _STRAY.sub("", junk).strip() and bool(boxes)
    return boxes, clamped, leaked + after, well_formed


def _read_boxes(coords: str) -> tuple[tuple[Box, ...], bool]:
    boxes, clamped = [], False
    for match in _BOX.finditer(coords):
        # float, not int: a digit run too long for int() reads as inf (then clamped), never as an error
        values = [float(v) for v in match.groups()]
        box, was_clamped = _clamp_box(values)
        boxes.append(box)
        clamped |= was_clamped
    return tuple(boxes), clamped


def _clamp_box(values: list[float] | tuple[float, ...]) -> tuple[Box, bool]:
    """4 numbers -> a box inside 0..MODEL_MAX with x0 <= x1 and y0 <= y1, and whether anything changed."""
    x0, y0, x1, y1 = (min(max(v, 0.0), float(MODEL_MAX)) for v in values)
    changed = any(not 0 <= v <= MODEL_MAX for v in values) or x0 > x1 or y0 > y1
    x0, x1 = min(x0, x1), max(x0, x1)
    y0, y1 = min(y0, y1), max(y0, y1)
    return (round(x0), round(y0), round(x1), round(y1)), changed


def _has_area(box: Box) -> bool:
    return box[2] > box[0] and box[3] > box[1]


def _mark_repeats(blocks: list[Block]) -> list[Block]:
    """Flag blocks that repeat an earlier one's label and text without a box of their own."""
    seen: dict[tuple[str, str], set[Box]] = {}
    out = []
    for block in blocks:
        key = (block.label, block.text)
        own = {b for b in block.boxes if _has_area(b)}
        earlier = seen.get(key)
        if earlier is not None and len(block.text) >= _MIN_REPEAT_CHARS and (not own or own <= earlier):
            block = replace(block, repeated=True)
        seen.setdefault(key, set()).update(own)
        out.append(block)
    return out


def _looped(blocks: list[Block]) -> bool:
    """Two or more looping repeats, or a block whose text loops."""
    return sum(b.repeated for b in blocks) >= 2 or any(_text_loops(b.text) for b in blocks)


def _text_loops(text: str) -> bool:
    """The block's last _LOOP_TAIL_CHARS characters (table markup and whitespace runs made one space, since
    a table of empty cells is legitimate) compress below _LOOP_MAX_RATIO: a decoding loop repeats itself
    with small variations ("378 378 379 379", "overline[[overline][||") that an exact-match test misses."""
    recent = text[-8 * _LOOP_TAIL_CHARS :]  # bounds the work on a long block
    tail = _SPACES.sub(" ", _TABLE_MARKUP.sub(" ", recent))[-_LOOP_TAIL_CHARS:].encode()
    return len(tail) >= _LOOP_MIN_CHARS and len(zlib.compress(tail, 9)) < _LOOP_MAX_RATIO * len(tail)


def _ends_inside_tag(raw: str) -> bool:
    """The text stops in the middle of a tag (`...<|de`) or right after an opening one."""
    tail = raw.rstrip()
    if tail.endswith((REF, DET)):
        return True
    return any(tail.endswith(tag[:k]) for tag in _TAGS for k in range(2, len(tag)))


def _last_block_cut(blocks: list[Block]) -> bool:
    """The last block opens a table or display formula it never closes, or is a header with no text (a
    figure excepted: figures have no text)."""
    if not blocks:
        return False
    last = blocks[-1]
    return _ends_open(last.text) or (not last.text and last.kind != "figure")


def _ends_open(text: str) -> bool:
    """A table or a display formula is opened and never closed (the token cap cut it)."""
    tables_open = text.count("<table") > text.count("</table>")
    return tables_open or len(_DISPLAY_OPEN.findall(text)) > len(_DISPLAY_CLOSE.findall(text))


def figure_placeholder(order: int) -> str:
    """What `markdown` holds where figure block `order` was (an HTML comment: invisible when rendered)."""
    return f"<!-- figure {order} -->"


def page_markdown(page: ParsedPage, figure_links: dict[int, str] | None = None) -> str:
    """The page's clean Markdown: blocks in order, blank line between them, no tags, no `<center>`.

    A figure block becomes `![](link)` when figure_links has its block order, else figure_placeholder().
    A plain or empty page comes back as its text.
    """
    links = figure_links or {}
    parts = []
    for block in page.blocks:
        text = _CENTER.sub("", block.text).strip()
        if block.kind == "figure":
            link = links.get(block.order)
            figure = f"![]({link})" if link is not None else figure_placeholder(block.order)
            text = f"{figure}\n\n{text}" if text else figure
        if text:
            parts.append(text)
    return _BLANK_RUNS.sub("\n\n", "\n\n".join(parts))


def link_figures(markdown: str, figure_links: dict[int, str]) -> str:
    """Stored Markdown with figure placeholders -> the same with `![](link)` where a link is known."""

    def _link(match: re.Match[str]) -> str:
        link = figure_links.get(int(match.group(1)))
        return match.group(0) if link is None else f"![]({link})"

    return _FIGURE_PLACEHOLDER.sub(_link, markdown)
