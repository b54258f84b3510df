"""The viewer's page images: each exported page rendered again from its source PDF, only while the source
holds the version the run read, in isolated children, written beside the figures; a source that is gone,
changed or broken leaves blank sheets and says why, and never stops the export. Output committed through the
pipeline's own commit protocol (no Ray); the sources are real PDFs on local disk."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pyarrow as pa
import pymupdf
import pytest
from PIL import Image
from viewer_fixtures import chromium, screenshot

from pipeline.config import RenderConfig
from pipeline.export import ExportConfig, run_export
from pipeline.export.page_images import preview_pdf
from pipeline.export.records import document_file_name
from pipeline.export.viewer import BOX_BORDER_PX, GAP_PX, HEADER_PX, KIND_COLOURS, SHEET_PX
from pipeline.samples import corrupt_pdf_bytes, sample_pdf_bytes
from pipeline.schema import PAGES_SCHEMA
from pipeline.stages.rows import RunStamp, new_row
from pipeline.store.listing import content_hash_of
from pipeline.store.output import Output, commit_part
from rtprune.engines.contract import EngineIdentity

A4 = (595.0, 842.0)
BOXED = pymupdf.Rect(100, 200, 300, 400)  # a black square with a table block drawn around it
UNBOXED = pymupdf.Rect(350, 600, 500, 750)  # a black square no block covers


def _square_pdf() -> bytes:
    doc = pymupdf.open()
    page = doc.new_page(width=A4[0], height=A4[1])
    for rect in (BOXED, UNBOXED):
        page.draw_rect(rect, color=(0, 0, 0), fill=(0, 0, 0))
    return doc.tobytes()


def _box_model(rect: pymupdf.Rect) -> list[int]:
    return [round(rect.x0 / A4[0] * 999), round(rect.y0 / A4[1] * 999)] + [
        round(rect.x1 / A4[0] * 999),
        round(rect.y1 / A4[1] * 999),
    ]


def _commit(out_dir: Path, source: Path, pages: int, content_hash: str | None = None) -> str:
    """Commit a document read from `source` (its URI and content hash as the listing gives them); doc_id."""
    fs = fsspec.filesystem("file")
    uri = fs.unstrip_protocol(str(source))
    doc = {
        "doc_id": "doc",
        "source_uri": uri,
        "content_hash": content_hash or content_hash_of(fs.info(str(source))),
    }
    stamp = RunStamp("run-1", EngineIdentity("m", "tiny", "none", "h"))
    block = {
        "order": 0,
        "label": "table",
        "kind": "table",
        "text": "<table><tr><td>a</td></tr></table>",
        "box_model": _box_model(BOXED),
        "box_px": [],
        "box_pt": [],
        "figure": "",
    }
    rows = [
        new_row(stamp, doc, i, pages)
        | {
            "text": f"page {i}",
            "markdown": f"page {i}",
            "blocks": [block],
            "width_pt": A4[0],
            "height_pt": A4[1],
        }
        for i in range(pages)
    ]
    documents = [{**doc, "ok": True}]
    commit_part(
        Output.open(str(out_dir)), "run-1", 0, pa.Table.from_pylist(rows, schema=PAGES_SCHEMA), documents, "e"
    )
    return "doc"


def _export(tmp_path: Path, uri: str, **extra):
    cfg = ExportConfig.model_validate(
        {"output": str(tmp_path / "out"), "dest": str(tmp_path / "export"), **extra}
    )
    result = run_export(cfg)
    md = tmp_path / "export" / "markdown" / document_file_name("doc", uri)
    return result, md.with_suffix(".html"), md.with_suffix("")


def _uri(path: Path) -> str:
    return fsspec.filesystem("file").unstrip_protocol(str(path))


def test_each_page_gets_its_image_from_the_unchanged_source(tmp_path):
    source = tmp_path / "in" / "report.pdf"
    source.parent.mkdir()
    source.write_bytes(sample_pdf_bytes(2))
    _commit(tmp_path / "out", source, 2)
    result, viewer, folder = _export(tmp_path, _uri(source))
    assert result.page_image_files == 2
    for i in (1, 2):
        image = Image.open(folder / f"p{i:04d}.jpg")
        assert image.format == "JPEG" and image.width == 960
        assert abs(image.height - round(960 * A4[1] / A4[0])) <= 1  # the page's own shape
        assert f'<img class="page" src="{folder.name}/p{i:04d}.jpg"' in viewer.read_text()
    assert "page images:" not in viewer.read_text()  # no note: every page has its image


@pytest.mark.parametrize(
    ("damage", "note"),
    [
        ("rewritten", "the source changed since it was read"),
        ("removed", "the source is gone"),
        ("corrupt", "the source could not be rendered: cannot open PDF"),
    ],
)
def test_a_source_that_changed_is_gone_or_broken_leaves_blank_sheets_and_says_why(tmp_path, damage, note):
    source = tmp_path / "in" / "report.pdf"
    source.parent.mkdir()
    source.write_bytes(corrupt_pdf_bytes() if damage == "corrupt" else sample_pdf_bytes(1))
    _commit(tmp_path / "out", source, 1)
    if damage == "rewritten":
        source.write_bytes(sample_pdf_bytes(1, seed=5))
        os.utime(source, (1, 1))  # a new mtime whatever the clock's resolution
    elif damage == "removed":
        source.unlink()
    result, viewer, folder = _export(tmp_path, _uri(source))
    html = viewer.read_text()
    assert result.page_image_files == 0 and not folder.exists()
    assert note in html and '<img class="page"' not in html
    assert result.documents == 1 and result.pages_ok == 1  # the export itself went on


def test_page_images_off_reads_no_source(tmp_path):
    source = tmp_path / "in" / "report.pdf"
    source.parent.mkdir()
    source.write_bytes(sample_pdf_bytes(1))
    _commit(tmp_path / "out", source, 1)
    source.chmod(0)  # a read would fail (root reads anyway: the note below says it was not attempted)
    result, viewer, folder = _export(tmp_path, _uri(source), page_images=False)
    assert result.page_image_files == 0 and not folder.exists()
    assert "page images are off" in viewer.read_text()


def test_a_huge_page_is_rendered_within_the_pixel_cap():
    cfg = RenderConfig(max_pixels_per_page=200 * 200)
    doc = pymupdf.open()
    doc.new_page(width=5000, height=5000)
    outcome = preview_pdf(doc.tobytes(), cfg, width_px=960)
    page = outcome.pages[0]
    assert not page.error and page.width_px * page.height_px <= 200 * 200


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _close(px: tuple[int, ...], rgb: tuple[int, int, int], tolerance: int) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(px[:3], rgb, strict=True))


@pytest.mark.skipif(
    chromium() is None, reason="needs Chromium (apt-get install chromium; .ci/run installs it)"
)
def test_the_blocks_are_drawn_over_the_page_image_in_a_real_browser(tmp_path):
    source = tmp_path / "in" / "squares.pdf"
    source.parent.mkdir()
    source.write_bytes(_square_pdf())
    _commit(tmp_path / "out", source, 1)
    _, viewer, _ = _export(tmp_path, _uri(source))
    shot = tmp_path / "shot.png"
    screenshot(viewer, shot, (1200, 900), tmp_path / "profile")
    image = Image.open(shot).convert("RGB")
    scale = SHEET_PX / A4[0]  # CSS pixels per PDF point on the drawn sheet

    def at(x_pt: float, y_pt: float) -> tuple[int, ...]:
        return image.getpixel((round(GAP_PX + x_pt * scale), round(HEADER_PX + GAP_PX + y_pt * scale)))

    assert _close(at(*UNBOXED.tl + (UNBOXED.br - UNBOXED.tl) / 2), (0, 0, 0), 24)  # the page image itself
    assert _close(at(550, 100), (255, 255, 255), 16)  # the page's white, where the PDF draws nothing
    inside = at(*BOXED.tl + (BOXED.br - BOXED.tl) / 2)
    assert max(inside) < 60  # the boxed square shows through the box's light tint
    table = _rgb(KIND_COLOURS["table"])
    border_x = BOXED.x0 + BOX_BORDER_PX / 2 / scale
    assert _close(at(border_x, (BOXED.y0 + BOXED.y1) / 2), table, 8)  # the box's border over the image
