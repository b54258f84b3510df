"""A page row's layout from the text it kept: blocks in three frames, flags, counts and cropped figures on a
rendered PDF page with a figure at a known place; the committer's figure keys and links."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest
from PIL import Image
from structure_fixtures import (
    FIGURE_PT,
    GROUNDING,
    PAGE_PT,
    RED,
    grounding_text,
    model_box,
    rendered_page_row,
)

from pipeline.stages.figures import attach_figures
from pipeline.stages.ocr import page_image
from pipeline.stages.rows import FIGURES_PNG, OCR_OUTPUT_SCHEMA, mark_error, to_table
from pipeline.stages.structure import structure_row
from pipeline.store import paths


@pytest.fixture(scope="module")
def rendered_row() -> dict:
    return rendered_page_row()


def test_the_rendered_page_carries_its_size_in_points(rendered_row):
    assert (rendered_row["width_pt"], rendered_row["height_pt"]) == PAGE_PT
    assert (rendered_row["width_px"], rendered_row["height_px"]) == (1190, 1684)  # 144 dpi


def test_blocks_land_in_all_three_frames_and_the_figure_is_the_red_square(rendered_row):
    out = structure_row({**rendered_row, "text": grounding_text()}, lambda: page_image(rendered_row))
    blocks = out["blocks"]
    assert [b["kind"] for b in blocks] == ["heading", "figure", "caption", "table", "formula"]
    figure = blocks[1]
    assert figure["box_model"] == model_box(FIGURE_PT)
    assert figure["box_pt"] == pytest.approx(list(FIGURE_PT), abs=0.6)  # one model unit is 0.6-0.85 pt
    assert figure["box_px"] == pytest.approx([2 * v for v in FIGURE_PT], abs=1.7)  # 144 dpi: 2 px a point
    (png,) = out[FIGURES_PNG]
    crop = Image.open(io.BytesIO(png)).convert("RGB")
    assert abs(crop.width - 400) <= 3 and abs(crop.height - 300) <= 3
    inner = crop.crop((4, 4, crop.width - 4, crop.height - 4))
    assert inner.getcolors() == [(inner.width * inner.height, RED)]  # nothing but the square inside
    assert (out["n_tables"], out["n_formulas"], out["n_figures"]) == (1, 1, 1)
    assert out["layout_parsed"] and not out["layout_truncated"] and out["layout_flags"] == ""
    assert out["markdown"].startswith("# Title of the page\n\n<!-- figure 1 -->\n\nA red square.")
    assert out["text"] == grounding_text()  # the raw output stays, for provenance


def test_figures_off_or_no_image_crop_nothing_but_keep_the_boxes(rendered_row):
    row = {**rendered_row, "text": grounding_text()}
    calls = []
    off = structure_row(row, lambda: calls.append(1), figures=False)
    assert off[FIGURES_PNG] == [] and calls == [] and off["blocks"][1]["box_model"] == model_box(FIGURE_PT)
    plain = structure_row({**rendered_row, "text": "Just text, no layout."}, lambda: calls.append(1))
    assert calls == []  # no figure block: the image is never decoded
    assert plain["markdown"] == "Just text, no layout." and not plain["layout_parsed"]
    assert [(b["label"], b["box_model"], b["box_pt"]) for b in plain["blocks"]] == [("", [], [])]


def test_a_page_cut_at_the_token_cap_and_a_looping_one_are_flagged(rendered_row):
    cut = structure_row({**rendered_row, "text": grounding_text(), "finish_reason": "length"}, None)
    assert cut["layout_truncated"]
    loop = (GROUNDING / "v1_block_loop.txt").read_text(encoding="utf-8")
    looped = structure_row({**rendered_row, "text": loop}, None)
    assert set(looped["layout_flags"].split(",")) >= {"looped", "repeated"}


def test_text_layer_and_error_rows(rendered_row):
    layer = structure_row({**rendered_row, "text": "Plain text.", "text_source": "text_layer"}, None)
    (block,) = layer["blocks"]
    assert block["box_pt"] == [0.0, 0.0, *PAGE_PT] and block["box_px"] == [0.0, 0.0, 1190.0, 1684.0]
    assert layer["markdown"] == "Plain text." and not layer["layout_parsed"]
    failed = structure_row(mark_error({**rendered_row, "text": grounding_text()}, "ocr", "boom"), None)
    assert failed["blocks"] == [] and failed["markdown"] == "" and failed["n_tables"] == 0


def test_attach_figures_keys_links_and_drops_the_png_column(rendered_row):
    row = structure_row({**rendered_row, "text": grounding_text()}, lambda: page_image(rendered_row))
    no_crop = structure_row({**rendered_row, "page_index": 4, "text": grounding_text()}, None)
    table = to_table([row, no_crop], OCR_OUTPUT_SCHEMA)
    part, files = attach_figures(table, "run-1", 7)
    key = paths.figure_key("run-1", 7, "d0c", 3, 1)
    assert key == "figures/run-1/000007/d0c-00003-001.png" and files == {key: row[FIGURES_PNG][0]}
    assert FIGURES_PNG not in part.column_names
    first, second = part.to_pylist()
    assert first["blocks"][1]["figure"] == key and f"![]({key})" in first["markdown"]
    assert "<!-- figure 1 -->" not in first["markdown"]
    assert second["blocks"][1]["figure"] == "" and "<!-- figure 1 -->" in second["markdown"]
    assert paths.figure_part(key) == ("run-1", 7)
    without = table.drop_columns([FIGURES_PNG])
    assert attach_figures(without, "run-1", 7) == (without, {})
    assert part.schema.field("blocks").type == pa.schema(OCR_OUTPUT_SCHEMA).field("blocks").type
