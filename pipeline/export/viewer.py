"""The HTML viewer of one exported document: per page, the page's image with its layout drawn over it to
scale (each block's box in its kind's colour) beside the page's Markdown rendered block by block.

A static file that works opened from the export folder (file://): no server, no network, no JavaScript;
page images and figures are the files beside the document's Markdown. A page without an image (its source
gone or changed, or page images off: pipeline/export/page_images.py) is drawn as a blank sheet of its size,
with each figure shown in its box, and the header says why.
Every text (names, errors, the model's output) is HTML-escaped, and a Content-Security-Policy forbids
scripts outright, so a page whose text holds `<script>` shows it and never runs it.
"""

from __future__ import annotations

import html
import re

from pipeline.export.html_markdown import markdown_html
from pipeline.export.records import Document, Page

# Colour of each block kind's box (and its legend). Distinct, and none of them is the sheet's white.
KIND_COLOURS = {
    "heading": "#d62728",
    "text": "#1f77b4",
    "table": "#2ca02c",
    "formula": "#9467bd",
    "figure": "#ff7f0e",
    "caption": "#8c564b",
    "footnote": "#7f7f7f",
    "other": "#17becf",
}
SHEET_PX = 480  # width of a drawn page, CSS pixels
HEADER_PX = 96  # the document header's fixed height, so pages land at known places
GAP_PX = 16  # padding around and between a page's sheet and its Markdown
BOX_BORDER_PX = 3
_A4_RATIO = 842 / 595  # the sheet's shape when a page's size is unknown (rows written before it was kept)
_CENTER = re.compile(r"</?center>")
_CSP = "default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'"

_STYLE = f"""
body {{ margin: 0; font: 14px/1.4 sans-serif; background: #f4f4f4; color: #222; }}
header {{ height: {HEADER_PX}px; box-sizing: border-box; padding: 8px {GAP_PX}px; overflow: hidden;
  background: #fff; border-bottom: 1px solid #ccc; }}
header h1 {{ font-size: 18px; margin: 0 0 4px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
.legend span {{ display: inline-block; margin-right: 10px; padding-left: 4px; border-left: 10px solid; }}
section.page {{ display: flex; align-items: flex-start; gap: {GAP_PX}px; padding: {GAP_PX}px; margin: 0; }}
.sheet {{ position: relative; flex: none; width: {SHEET_PX}px; background: #fff; }}
.box {{ position: absolute; box-sizing: border-box; border: {BOX_BORDER_PX}px solid; display: block; }}
.box img, .sheet img.page {{ position: absolute; inset: 0; width: 100%; height: 100%; }}
.note {{ color: #8a5a00; }}
.content {{ flex: 1; min-width: 0; background: #fff; padding: 8px {GAP_PX}px; overflow-wrap: anywhere; }}
.content img.figure {{ max-width: 100%; }}
.content .block {{ border-left: 4px solid; padding-left: 8px; margin: 6px 0; }}
.content .block:target {{ background: #fff6c0; }}
.failed {{ color: #a00; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #999; padding: 2px 6px; }}
pre.math {{ white-space: pre-wrap; background: #f7f7ff; padding: 4px; }}
"""


def _box_style(box: list[int], colour: str) -> str:
    x0, y0, x1, y1 = (v / 999 * 100 for v in box)
    return (
        f"left:{x0:.3f}%;top:{y0:.3f}%;width:{x1 - x0:.3f}%;height:{y1 - y0:.3f}%;"
        f"border-color:{colour};background:{colour}1a"
    )


def sheet_height_px(page: Page) -> float:
    """The drawn page's height: SHEET_PX wide, the page's own shape (A4's when unknown)."""
    ratio = page.height_pt / page.width_pt if page.width_pt > 0 and page.height_pt > 0 else _A4_RATIO
    return SHEET_PX * ratio


def _sheet(page: Page, figures: dict[str, str], page_image: str | None) -> str:
    """The page's image (a blank sheet without one) with every block's box over it; on a blank sheet each
    figure is shown in its box."""
    boxes = [f'<img class="page" src="{_e(page_image)}" alt="">'] if page_image else []
    for block in page.blocks:
        if len(block["box_model"]) != 4:
            continue
        colour = KIND_COLOURS.get(block["kind"], KIND_COLOURS["other"])
        title = html.escape(f"{block['label']}: {block['text'][:300]}", quote=True)
        src = None if page_image else figures.get(block["figure"])
        image = f'<img src="{_e(src)}" alt="">' if src else ""
        anchor = f"p{page.index}-b{block['order']}"
        boxes.append(
            f'<a class="box" href="#{anchor}" title="{title}" '
            f'style="{_box_style(block["box_model"], colour)}">{image}</a>'
        )
    return f'<div class="sheet" style="height:{sheet_height_px(page):.2f}px">{"".join(boxes)}</div>'


def _content(page: Page, figures: dict[str, str]) -> str:
    if page.status != "ok":
        return f'<p class="failed">Page failed at stage {_e(page.error_stage)}: {_e(page.error)}</p>'
    if not page.blocks:  # rows written before layouts were read: their Markdown as a whole
        return markdown_html(page.markdown or page.text, figures)
    parts = []
    for block in page.blocks:
        colour = KIND_COLOURS.get(block["kind"], KIND_COLOURS["other"])
        src = figures.get(block["figure"])
        body = f'<img class="figure" src="{html.escape(src, quote=True)}" alt="">' if src else ""
        body += markdown_html(_CENTER.sub("", block["text"]), figures)
        parts.append(
            f'<div class="block" id="p{page.index}-b{block["order"]}" style="border-color:{colour}" '
            f'title="{_e(block["label"] or "text")}">{body}</div>'
        )
    return "\n".join(parts)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def viewer_html(
    doc: Document,
    figures: dict[str, str],
    page_images: dict[int, str] | None = None,
    images_note: str = "",
) -> str:
    """The document's viewer page. `figures`: figure key (a block's `figure`) -> its src relative to the
    HTML file; blocks whose figure is not in it show their box only. `page_images`: page index -> its
    image's src relative to the HTML file; `images_note`: why pages have no image (shown in the header)."""
    page_images = page_images or {}
    name = doc.source_uri.rstrip("/").rsplit("/", 1)[-1] or doc.source_uri
    legend = "".join(f'<span style="border-color:{c}">{k}</span>' for k, c in KIND_COLOURS.items())
    note = f' &middot; <span class="note">page images: {_e(images_note)}</span>' if images_note else ""
    pages = []
    for page in doc.pages:
        label = "Document" if page.index < 0 else f"Page {page.index + 1} of {doc.page_count}"
        sheet = _sheet(page, figures, page_images.get(page.index)) if page.index >= 0 else ""
        pages.append(
            f'<section class="page" id="p{page.index}">{sheet}<div class="content">'
            f"<h2>{_e(label)}</h2>{_content(page, figures)}</div></section>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{_e(name)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{_e(name)}</h1><div>{_e(doc.source_uri)} &middot; {doc.pages_ok} pages ok, "
        f"{doc.pages_failed} failed &middot; model {_e(doc.model_id)}{note}</div>"
        f'<div class="legend">{legend}</div></header>\n' + "\n".join(pages) + "\n</body></html>\n"
    )
