"""Text metric: OmniDocBench-style normalised edit distance (NED) between two page texts.

Both sides go through the same `normalize_text` before they are compared, so markup the model chooses
(markdown vs HTML tables, grounding boxes, emphasis) does not count as an error, and what is left is the
page's readable text. The rules, in the order they are applied:

1. Unicode NFKC. Folds full-width ASCII (U+FF01..U+FF5E) and the ideographic space to their half-width
   forms, ligatures (U+FB01 -> "fi"), superscript digits, and DeepSeek's full-width bars in special tokens
   (`<｜end▁of▁sentence｜>` -> `<|end▁of▁sentence|>`). CJK punctuation such as "。" has no compatibility form
   and is kept.
2. Grounding and special tokens. DeepSeek-OCR's grounding output
   `<|ref|>LABEL<|/ref|><|det|>[[x0, y0, x1, y1]]<|/det|>` is removed whole: in document-to-markdown mode
   LABEL is a layout class ("text", "title", "table", "image"), not page text. Any other `<|...|>` token
   (`<|grounding|>`, end-of-sentence) is removed.
3. HTML. `<td>`/`<th>` cells and `<tr>` rows become whitespace-separated cell text, `<br>` a space, other
   tags are dropped, then entities are unescaped (`&amp;` -> `&`), so an escaped `&lt;` stays literal text.
4. Markdown. Table pipes and `|---|` separator rows are dropped (cells become whitespace-separated text,
   the same string an HTML table with those cells gives); heading markers `#`, block-quote `>`, bullet
   markers (`-`, `*`, `+` at line start; numbered items keep their number, it is printed on the page),
   horizontal rules, code fences and backticks, emphasis (`**b**`, `__b__`, `*i*`, `_i_`, `~~s~~`),
   images `![alt](url)` (dropped: a figure has no text) and links `[text](url)` (-> text).
5. Math delimiters `$$`, `$`, `\\[`, `\\]`, `\\(`, `\\)` are removed; the LaTeX source between them is kept as is
   (OmniDocBench renders inline formulas to Unicode first; we do not, so formulas are compared as source).
6. Optional (`drop_punctuation=True`): keep only word characters, as OmniDocBench's own text cleaning does.
   Off by default because a dropped comma or decimal point is a real OCR error on most corpora.
7. Whitespace folded: every run of whitespace becomes one space; leading/trailing space removed.

Case is kept: a wrongly cased letter is an error.

Per page NED = Levenshtein edits / max(len(a), len(b)) after normalisation, 0 when both are empty and
1 when exactly one is empty. The corpus score is the mean of the per-page values (each page weighs the
same, whatever its length).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

_GROUNDING = re.compile(r"<\|ref\|>.*?<\|/ref\|>\s*(<\|det\|>.*?<\|/det\|>)?|<\|det\|>.*?<\|/det\|>", re.S)
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>]*\|>")
_HTML_CELL_OR_ROW_END = re.compile(r"</?(td|th|tr)\b[^>]*>|<br\s*/?>", re.I)
_HTML_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*\b[^<>]*>")
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_TABLE_SEPARATOR_ROW = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$", re.M)
_MD_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$", re.M)
_MD_LINE_PREFIX = re.compile(r"^\s*(#{1,6}\s+|>\s?|[-*+]\s+)", re.M)
_MD_FENCE = re.compile(r"^\s*(```|~~~)[^\n]*$", re.M)
# Emphasis: the marker must hug non-space text so arithmetic like "2 * 3 * 4" is left alone; single
# underscores only at word edges so snake_case identifiers survive.
_MD_STRONG = re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1", re.S)
_MD_EM_STAR = re.compile(r"\*(?=\S)([^*\n]+?)(?<=\S)\*")
_MD_EM_UNDERSCORE = re.compile(r"(?<!\w)_(?=\S)([^_\n]+?)(?<=\S)_(?!\w)")
_MATH_DELIMITER = re.compile(r"\$\$|\$|\\\[|\\\]|\\\(|\\\)")
_NON_WORD = re.compile(r"[^\w\s]")
_WHITESPACE = re.compile(r"\s+")


def _strip_html(text: str) -> str:
    text = _HTML_CELL_OR_ROW_END.sub(" ", text)
    text = _HTML_TAG.sub("", text)
    return html.unescape(text)


def _strip_markdown(text: str) -> str:
    text = _MD_FENCE.sub("", text)
    text = _MD_TABLE_SEPARATOR_ROW.sub("", text)
    text = _MD_RULE.sub("", text)
    text = text.replace("|", " ")
    text = _MD_LINE_PREFIX.sub("", text)
    text = _MD_IMAGE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_STRONG.sub(r"\2", text)
    text = _MD_EM_STAR.sub(r"\1", text)
    text = _MD_EM_UNDERSCORE.sub(r"\1", text)
    return text.replace("`", "")


def normalize_text(text: str, *, drop_punctuation: bool = False) -> str:
    """Page text -> the comparable string (rules 1-7 of the module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    text = _GROUNDING.sub("\n", text)
    text = _SPECIAL_TOKEN.sub(" ", text)
    text = _strip_html(text)
    text = _strip_markdown(text)
    text = _MATH_DELIMITER.sub(" ", text)
    if drop_punctuation:
        text = _NON_WORD.sub("", text)
    return _WHITESPACE.sub(" ", text).strip()


def edit_distance_ratio(a: str, b: str) -> float:
    """Levenshtein edits / max(len(a), len(b)) of two already normalised strings; 0.0 if both are empty."""
    longest = max(len(a), len(b))
    if longest == 0:
        return 0.0
    return Levenshtein.distance(a, b) / longest


def page_ned(prediction: str, reference: str, *, drop_punctuation: bool = False) -> float:
    """Normalised edit distance of one page, in [0, 1]; 0 means identical after normalisation."""
    return edit_distance_ratio(
        normalize_text(prediction, drop_punctuation=drop_punctuation),
        normalize_text(reference, drop_punctuation=drop_punctuation),
    )


def corpus_ned(
    predictions: Sequence[str], references: Sequence[str], *, drop_punctuation: bool = False
) -> float:
    """Mean per-page NED over paired pages. Raises on a length mismatch or an empty corpus, since a
    silently truncated pairing would report a score for pages that were never compared."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("no pages to score")
    scores = [
        page_ned(p, r, drop_punctuation=drop_punctuation)
        for p, r in zip(predictions, references, strict=True)
    ]
    return sum(scores) / len(scores)


def agreement(pruned: Sequence[str], unpruned: Sequence[str]) -> float:
    """1 - corpus NED of a pruned setting's pages against the unpruned model's pages: accuracy relative
    to the unpruned model, the way the RTPrune paper reports it."""
    return 1.0 - corpus_ned(pruned, unpruned)
