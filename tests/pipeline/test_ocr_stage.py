"""ocr_pages on the real engine (tiny random weights), with faults injected around its ocr() call."""

from __future__ import annotations

import functools

import pytest

from pipeline.config import PagePolicy, RenderConfig
from pipeline.samples import sample_pdf_bytes
from pipeline.stages.ocr import ocr_pages
from pipeline.stages.rasterizer import render_pdf
from pipeline.stages.rows import RunStamp, mark_error, new_row
from rtprune.engines.contract import EngineIdentity

torch = pytest.importorskip("torch")
pytest.importorskip("rtprune.engines.hf.engine")

from pipeline_fixtures import ENGINE_OVERRIDES, PAGE_POLICY_ONE_ATTEMPT  # noqa: E402

OOM = (torch.OutOfMemoryError,)
ONE_ATTEMPT = PagePolicy(**PAGE_POLICY_ONE_ATTEMPT)  # retries are test_page_policy.py's subject


@pytest.fixture(scope="module")
def engine():
    from rtprune.engines.contract import EngineConfig
    from rtprune.engines.hf.engine import OcrEngine

    return OcrEngine(EngineConfig(**ENGINE_OVERRIDES))


class Faulty:
    """The real engine with a fault policy in front of ocr(): OOM above a batch size, or a page that
    always raises (identified by its image height)."""

    def __init__(self, engine, max_batch: int = 99, poison_height: int = -1) -> None:
        self._engine, self._max_batch, self._poison = engine, max_batch, poison_height
        self.calls: list[int] = []

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def ocr(self, images):
        self.calls.append(len(images))
        if len(images) > self._max_batch:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if any(im.height == self._poison for im in images):
            raise ValueError("page tensor has NaNs")
        return self._engine.ocr(images)


def _rows() -> list[dict]:
    """Fresh row dicts (a test may replace or edit them) over pages rendered once per module."""
    return [dict(r) for r in _rendered_rows()]


@functools.cache
def _rendered_rows(heights_pt=(842, 842, 600)) -> tuple[dict, ...]:
    stamp = RunStamp("r", EngineIdentity("configured-model", "tiny", "rtprune", "h"))
    doc = {"doc_id": "d", "source_uri": "s3://b/d.pdf", "content_hash": "c"}
    rows = []
    for i, h in enumerate(heights_pt):
        import pymupdf

        pdf = pymupdf.open()
        pdf.insert_pdf(pymupdf.open(stream=sample_pdf_bytes(1, seed=i)))
        pdf[0].set_mediabox(pymupdf.Rect(0, 0, 595, h))
        page = render_pdf(pdf.tobytes(), RenderConfig()).pages[0]
        rows.append(
            new_row(stamp, doc, i, len(heights_pt))
            | {
                "image": page.data,
                "width_px": page.width_px,
                "height_px": page.height_px,
                "page_format": "png",
                "render_s": 0.1,
            }
        )
    return tuple(rows)


def test_pages_get_text_and_usage_from_the_engine(engine):
    rows = _rows()
    out = ocr_pages(engine, rows, sub_batch_size=2, oom=OOM, policy=ONE_ATTEMPT)
    assert [r["page_index"] for r in out] == [0, 1, 2] and all(r["status"] == "ok" for r in out)
    for r in out:
        assert r["text"] and r["output_tokens"] > 0 and r["gpu_s"] > 0 and r["finish_reason"]
        assert 0 < r["visual_tokens_kept"] <= r["visual_tokens"] and r["model_id"] == engine.identity.model_id
        assert r["render_s"] == 0.1  # earlier stages' measurements survive


def test_oom_batch_is_split_and_every_page_still_succeeds(engine):
    faulty = Faulty(engine, max_batch=1)
    out = ocr_pages(faulty, _rows(), sub_batch_size=3, oom=OOM, policy=ONE_ATTEMPT)
    assert all(r["status"] == "ok" for r in out)
    assert faulty.calls[0] == 3 and faulty.calls.count(1) == 3


def test_a_failing_page_becomes_the_only_error_row(engine):
    rows = _rows()
    faulty = Faulty(engine, poison_height=rows[2]["height_px"])
    out = ocr_pages(faulty, rows, sub_batch_size=3, oom=OOM, policy=ONE_ATTEMPT)
    assert [r["status"] for r in out] == ["ok", "ok", "error"]
    assert out[2]["error_stage"] == "ocr" and "ValueError: page tensor has NaNs" in out[2]["error"]
    assert out[2]["text"] == "" and out[2]["image"] == b""


def test_error_rows_from_earlier_stages_pass_through_untouched(engine):
    rows = _rows()
    rows[1] = mark_error(rows[1], "render", "page render failed: bad image")
    out = ocr_pages(engine, rows, sub_batch_size=2, oom=OOM, policy=ONE_ATTEMPT)
    assert out[1] == rows[1] and out[0]["status"] == out[2]["status"] == "ok"


def test_an_undecodable_page_image_fails_alone_across_sub_batches(engine):
    rows = _rows()
    rows[0] = rows[0] | {"image": b"not a png"}
    out = ocr_pages(engine, rows, sub_batch_size=1, oom=OOM, policy=ONE_ATTEMPT)
    assert [r["status"] for r in out] == ["error", "ok", "ok"]
    assert out[0]["error_stage"] == "ocr" and out[0]["error"].startswith("cannot decode page image")
