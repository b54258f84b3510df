"""Fixtures generated in code: a two-page OmniDocBench-format folder and a born-digital PDF folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evaluation_fixtures import omnidocbench_records, write_born_digital_pdfs


@pytest.fixture
def omnidocbench_folder(tmp_path: Path) -> Path:
    from PIL import Image

    folder = tmp_path / "omnidocbench"
    (folder / "images").mkdir(parents=True)
    records = omnidocbench_records()
    for shade, record in zip((200, 120), records, strict=True):
        name = Path(record["page_info"]["image_path"]).name
        Image.new("RGB", (200, 100), (shade, shade, shade)).save(folder / "images" / name)
    (folder / "OmniDocBench.json").write_text(json.dumps(records), encoding="utf-8")
    return folder


@pytest.fixture
def pdf_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "pdfs"
    write_born_digital_pdfs(folder)
    return folder
