"""The figures of a part, at commit: each cropped figure gets its key under the part's figure folder
(pipeline/store/paths.py figure_key: run and seq, known only when the driver commits), its block's
`figure` column and its Markdown link point at that key, and the PNG bytes leave the table.

Pure function of the OCR stages' output table (OCR_OUTPUT_SCHEMA: the page columns and FIGURES_PNG); the
committer writes what it returns before the part (pipeline/store/output.py commit_part).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipeline.schema import PAGES_SCHEMA
from pipeline.stages.rows import FIGURES_PNG
from pipeline.store import paths
from rtprune.deepseek.grounding import link_figures


def figure_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The blocks that have a cropped figure, in order: figure blocks with a box (as structure.py crops)."""
    return [b for b in blocks if b["kind"] == "figure" and b["box_model"]]


def attach_figures(table: pa.Table, run_id: str, seq: int) -> tuple[pa.Table, dict[str, bytes]]:
    """OCR output rows -> (the rows without FIGURES_PNG, their blocks' figure keys and Markdown links set;
    {figure key: PNG bytes} to write). A page whose figure count does not match its figure blocks (cropping
    was off) keeps placeholders: a link to a file that is not written would be worse."""
    if FIGURES_PNG not in table.column_names:
        return table, {}
    pngs = table[FIGURES_PNG].to_pylist()
    table = table.drop_columns([FIGURES_PNG])
    todo = [i for i, p in enumerate(pngs) if p]
    if not todo:
        return table, {}
    blocks = table["blocks"].to_pylist()
    markdown = table["markdown"].to_pylist()
    doc_ids, pages = table["doc_id"].to_pylist(), table["page_index"].to_pylist()
    files: dict[str, bytes] = {}
    for i in todo:
        targets = figure_blocks(blocks[i])
        if len(targets) != len(pngs[i]):
            continue
        links = {}
        for block, png in zip(targets, pngs[i], strict=True):
            key = paths.figure_key(run_id, seq, doc_ids[i], pages[i], block["order"])
            block["figure"], links[block["order"]] = key, key
            files[key] = png
        markdown[i] = link_figures(markdown[i], links)
    for name, values in (("blocks", blocks), ("markdown", markdown)):
        index = table.schema.get_field_index(name)
        table = table.set_column(
            index, PAGES_SCHEMA.field(name), pa.array(values, PAGES_SCHEMA.field(name).type)
        )
    return table, files
