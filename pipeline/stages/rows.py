"""Page rows: the typed record every stage passes on, and its conversion to and from Arrow.

Between the render and OCR stages a row also carries the page image and its text layer (IMAGE_FIELDS); the OCR stage drops them, and hands the driver the page's cropped figures instead
(FIGURE_FIELDS), which the committer writes and drops. Every row leaving the pipeline conforms to PAGES_SCHEMA: no nulls, "" for not applicable."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pipeline.schema import PAGES_SCHEMA

if TYPE_CHECKING:  # the summary builds rows' columns with this module; it needs no torch (rtprune)
    from rtprune.engines.contract import EngineIdentity

IMAGE_FIELDS = [
    pa.field("image", pa.binary(), nullable=False),
    pa.field("width_px", pa.int32(), nullable=False),
    pa.field("height_px", pa.int32(), nullable=False),
    pa.field("page_format", pa.string(), nullable=False),
    pa.field("text_layer", pa.string(), nullable=False),  # the PDF's own text, for the page policy's fallback
]
RENDERED_SCHEMA = pa.schema(list(PAGES_SCHEMA) + IMAGE_FIELDS)
# The figures cropped from the page image (PNG), one per figure block with a box, in block order: the OCR
# stage has the image, the driver commits them (pipeline/stages/figures.py) and drops the column.
FIGURES_PNG = "figures_png"
FIGURE_FIELDS = [
    pa.field(FIGURES_PNG, pa.list_(pa.field("item", pa.binary(), nullable=False)), nullable=False)
]
OCR_OUTPUT_SCHEMA = pa.schema(list(PAGES_SCHEMA) + FIGURE_FIELDS)

_DEFAULTS: dict[str, Any] = {
    f.name: (
        []
        if pa.types.is_list(f.type)
        else ""
        if pa.types.is_string(f.type)
        else 0.0
        if pa.types.is_floating(f.type)
        else False
        if pa.types.is_boolean(f.type)
        else 0
    )
    for f in pa.schema(list(RENDERED_SCHEMA) + FIGURE_FIELDS)
}
_DEFAULTS["image"] = b""


# A page without a layout (error rows, and rows before the OCR stage read one).
NO_STRUCTURE: dict[str, Any] = {
    "markdown": "",
    "blocks": [],
    "layout_parsed": False,
    "layout_truncated": False,
    "layout_flags": "",
    "n_tables": 0,
    "n_formulas": 0,
    "n_figures": 0,
    FIGURES_PNG: [],
}


@dataclass(frozen=True)
class RunStamp:
    """What every row of a run carries before the engine has spoken (render errors never reach it): the run,
    and the engine identity as configured (the engine's own replaces it on the pages it OCRs)."""

    run_id: str
    identity: EngineIdentity


@dataclass(frozen=True)
class PageFailure:
    """Why a page (or a whole document) has no text: the stage that failed it and the reason, as its error
    row will say (error_stage, error)."""

    stage: str
    reason: str


def identity_columns(identity: EngineIdentity) -> dict[str, str]:
    """The engine identity as row columns (model_id, model_mode, prune_method, prune_config_hash)."""
    return asdict(identity)


def new_row(stamp: RunStamp, doc: dict[str, Any], page_index: int, page_count: int) -> dict[str, Any]:
    """A row with every column set: defaults, then the run stamp and the document's identity."""
    row = dict(_DEFAULTS)
    row.update(
        run_id=stamp.run_id,
        **identity_columns(stamp.identity),
        doc_id=doc["doc_id"],
        source_uri=doc["source_uri"],
        content_hash=doc["content_hash"],
        page_index=page_index,
        page_count=page_count,
        status="ok",
    )
    return row


def mark_error(row: dict[str, Any], stage: str | PageFailure, reason: str = "") -> dict[str, Any]:
    """The same row as an error of `stage` (or the stage and reason of a PageFailure); the text, its layout,
    figures and image are dropped (nothing half-done survives)."""
    failure = stage if isinstance(stage, PageFailure) else PageFailure(stage, reason)
    return {
        **row,
        "status": "error",
        "error_stage": failure.stage,
        "error": failure.reason or "unknown error",
        "text": "",
        "finish_reason": "",
        "text_source": "",
        "image": b"",
        "text_layer": "",
        **NO_STRUCTURE,
    }


def goes_to_ocr(row: dict[str, Any]) -> bool:
    """Whether the OCR engine reads this row: an ok page the router did not send to its text layer (error
    rows and routed pages pass the OCR stage untouched)."""
    return row["status"] == "ok" and row["route"] != "text_layer"


def to_table(rows: list[dict[str, Any]], schema: pa.Schema = PAGES_SCHEMA) -> pa.Table:
    """Rows -> Arrow with the explicit schema; a missing column or a None is a bug and raises here."""
    return pa.Table.from_pylist([{f.name: r[f.name] for f in schema} for r in rows], schema=schema)


def from_batch(batch: pa.Table | dict[str, Any]) -> list[dict[str, Any]]:
    """A Ray Data batch (Arrow table or dict of columns) -> list of row dicts."""
    if isinstance(batch, pa.Table):
        return batch.to_pylist()
    columns = list(batch)
    n = len(batch[columns[0]]) if columns else 0
    return [{c: _plain(batch[c][i]) for c in columns} for i in range(n)]


def _plain(value: Any) -> Any:
    """numpy scalars -> Python, so rows compare and serialise like the Arrow path."""
    return value.item() if hasattr(value, "item") and not isinstance(value, bytes | str) else value
