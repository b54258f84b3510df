"""A page row's layout: the model's grounding output read into clean Markdown, typed blocks (boxes in the
model's 0-999 frame, in image pixels and in PDF points), flags and counts, and the page's figures cropped
from its image. The OCR stages call `structure_row` once per page, on the text they kept.

The parsing and the geometry are DeepSeek-OCR's rules (rtprune.deepseek.grounding, .geometry); this module
only turns them into the row's columns (pipeline/schema.py) and the figures' PNG bytes (rows.FIGURES_PNG),
which the driver writes when it commits the page (pipeline/stages/figures.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from pipeline.stages.rows import FIGURES_PNG, NO_STRUCTURE
from rtprune.deepseek.geometry import crop_box, image_px_to_pdf_points, model_box_to_image_px, union_box
from rtprune.deepseek.grounding import MODEL_MAX, Block, ParsedPage, parse_grounding

ImageLoader = Callable[[], Any]  # -> the page's PIL image, decoded only when a figure needs cropping
_FLAGS = ("looped", "clamped", "malformed", "repeated")


def structure_row(
    row: dict[str, Any], load_image: ImageLoader | None, figures: bool = True
) -> dict[str, Any]:
    """The row with its layout columns (and FIGURES_PNG) set from the text it kept.

    OCR text (text_source ocr / ocr_retry) is parsed as grounding output; a page that took its text layer
    gets one text block covering the page; error rows get no layout. `load_image` gives the page image for
    cropping figures (called once, only when the page has a figure block with a box); `figures` off crops
    none (figure blocks keep their boxes, the Markdown its placeholders)."""
    if row["status"] != "ok":
        return {**row, **NO_STRUCTURE}
    if row["text_source"] == "text_layer":
        return {**row, **NO_STRUCTURE, **_text_layer_columns(row)}
    page = parse_grounding(row["text"], hit_token_cap=row["finish_reason"] == "length")
    pngs = _crop_figures(page, load_image) if figures and load_image is not None and page.figures() else []
    return {**row, **layout_columns(page, row), FIGURES_PNG: pngs}


def layout_columns(page: ParsedPage, row: dict[str, Any]) -> dict[str, Any]:
    """The schema's layout columns of a parsed page; boxes mapped with the row's page size."""
    flags = (["stripped"] if page.format == "stripped" else []) + [
        flag for flag, on in zip(_FLAGS, _flag_values(page), strict=True) if on
    ]
    return {
        "markdown": page.markdown,
        "blocks": [block_record(b, row) for b in page.blocks],
        "layout_parsed": page.parsed,
        "layout_truncated": page.truncated,
        "layout_flags": ",".join(flags),
        "n_tables": page.n_tables,
        "n_formulas": page.n_formulas,
        "n_figures": page.n_figures,
    }


def _flag_values(page: ParsedPage) -> tuple[bool, ...]:
    return (page.looped, page.clamped, page.malformed_blocks > 0, page.repeated_blocks > 0)


def block_record(block: Block, row: dict[str, Any]) -> dict[str, Any]:
    """One block as BLOCK_TYPE: its boxes joined into one (union), in the three frames; [] without a box."""
    box = union_box(block.boxes)
    w, h = row["width_px"], row["height_px"]
    box_px = model_box_to_image_px(box, w, h) if box is not None and w > 0 and h > 0 else None
    box_pt = None
    if box_px is not None and row["width_pt"] > 0 and row["height_pt"] > 0:
        box_pt = image_px_to_pdf_points(box_px, w, h, row["width_pt"], row["height_pt"])
    return {
        "order": block.order,
        "label": block.label,
        "kind": block.kind,
        "text": block.text,
        "box_model": [int(v) for v in box] if box is not None else [],
        "box_px": list(box_px) if box_px is not None else [],
        "box_pt": list(box_pt) if box_pt is not None else [],
        "figure": "",
    }


def _crop_figures(page: ParsedPage, load_image: ImageLoader) -> list[bytes]:
    """PNG bytes of each figure block with a box (page.figures(), in order), cut from the page image."""
    image = load_image()
    w, h = image.size
    out = []
    for block in page.figures():
        box = union_box(block.boxes)
        assert box is not None  # figures() holds blocks with a box
        buf = io.BytesIO()
        crop_box(image, model_box_to_image_px(box, w, h)).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def _text_layer_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A page that took its PDF text layer: one text block over the whole page, its text as Markdown."""
    w, h, wpt, hpt = row["width_px"], row["height_px"], row["width_pt"], row["height_pt"]
    block = {
        "order": 0,
        "label": "text",
        "kind": "text",
        "text": row["text"],
        "box_model": [0, 0, MODEL_MAX, MODEL_MAX],
        "box_px": [0.0, 0.0, float(w), float(h)] if w > 0 and h > 0 else [],
        "box_pt": [0.0, 0.0, float(wpt), float(hpt)] if wpt > 0 and hpt > 0 else [],
        "figure": "",
    }
    return {"markdown": row["text"], "blocks": [block]}
