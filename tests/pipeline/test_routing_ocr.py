"""A page routed to its text layer never enters the OCR engine, on either OCR stage, and leaves the stage
as it came; the other pages of the same batch are OCR'd (and given the page policy's second chances) as
before."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.config import PagePolicy, RenderConfig, StorageConfig
from pipeline.routing_config import RoutingConfig
from pipeline.samples import sample_pdf_bytes, scanned_pdf_bytes
from pipeline.schema import QUALITY_COLUMN_NAMES
from pipeline.stages.ocr import ocr_pages
from pipeline.stages.render import render_document
from pipeline.stages.routed_render import TEXT_SOURCE_ROUTED, render_routed_pdf
from pipeline.stages.rows import RunStamp
from rtprune.engines.contract import EngineIdentity

torch = pytest.importorskip("torch")
pytest.importorskip("rtprune.engines.hf.engine")

from pipeline_fixtures import ENGINE_OVERRIDES  # noqa: E402

OOM = (torch.OutOfMemoryError,)
ON = RoutingConfig(mode="text_layer")
STAMP = RunStamp("r", EngineIdentity("configured-model", "tiny", "rtprune", "h"))


class InProcessRenderer:
    """The render child's function run in this process (the isolation layer is test_render.py's subject)."""

    def render(self, data: bytes):
        return render_routed_pdf(data, RenderConfig(), ON)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[dict, ...]:
    import pymupdf

    doc = pymupdf.open(stream=sample_pdf_bytes(2, seed=1), filetype="pdf")
    doc.insert_pdf(pymupdf.open(stream=scanned_pdf_bytes(1, seed=2), filetype="pdf"))
    path = tmp_path_factory.mktemp("routed") / "mixed.pdf"
    path.write_bytes(doc.tobytes())
    ref = {"doc_id": "d", "uri": str(path), "source_uri": str(path), "content_hash": "c", "size_bytes": 1}
    return tuple(render_document(ref, InProcessRenderer(), StorageConfig(), STAMP, RenderConfig()))


@pytest.fixture
def rows(rendered) -> list[dict]:
    return [dict(r) for r in rendered]


@pytest.fixture(scope="module")
def engine():
    from rtprune.engines.contract import EngineConfig
    from rtprune.engines.hf.engine import OcrEngine

    return OcrEngine(EngineConfig(**ENGINE_OVERRIDES))


# What routing decides and the OCR stages must leave as it is (the layout step after OCR adds a routed page's
# layout columns, which are not the engine's doing).
_ROUTED_KEYS = (
    "text",
    "status",
    "route",
    "route_reason",
    "text_source",
    "gpu_s",
    "visual_tokens",
    "output_tokens",
)


def _routing_view(rows):
    return [{k: r[k] for k in _ROUTED_KEYS} for r in rows]


class Counting:
    """The real engine, counting the pages each call receives."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.pages = 0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def ocr(self, images, **kw):
        self.pages += len(images)
        return self._engine.ocr(images, **kw)


def test_routed_pages_pass_the_static_batch_stage_untouched(engine, rows):
    assert [r["route"] for r in rows] == ["text_layer", "text_layer", "ocr"]
    counting = Counting(engine)
    out = ocr_pages(counting, rows, sub_batch_size=4, oom=OOM, policy=PagePolicy(greedy_retry=False))
    assert (
        _routing_view(out[:2]) == _routing_view(rows[:2]) and counting.pages == 1
    )  # only the scan reached the engine
    assert all(r["text_source"] == TEXT_SOURCE_ROUTED and r["ocr_attempts"] == 0 for r in out[:2])
    assert out[2]["status"] == "ok" and out[2]["ocr_attempts"] == 1 and out[2]["gpu_s"] > 0


def test_the_page_policy_retries_only_ocr_pages(engine, rows):
    """The tiny model ends every page at the cap or in a loop: the default policy retries the scan once
    (unpruned); the routed pages have no finish reason to retry and are not touched."""
    counting = Counting(engine)
    out = ocr_pages(counting, rows, sub_batch_size=4, oom=OOM, policy=PagePolicy())
    assert (
        _routing_view(out[:2]) == _routing_view(rows[:2])
        and counting.pages == 2
        and out[2]["ocr_attempts"] == 2
    )


class Refusing:
    """An async engine that fails the test if a page reaches it."""

    identity = EngineIdentity("m", "tiny", "rtprune", "h")

    async def ocr_page(self, image, **kw):
        raise AssertionError("a routed page reached the engine")


def test_routed_pages_pass_the_vllm_stage_untouched(rows):
    from pipeline.stages.ocr_vllm import EngineMeter, ocr_row_with_policy

    async def run():
        meter = EngineMeter(4)
        return await asyncio.gather(
            *(ocr_row_with_policy(Refusing(), r, meter, (), PagePolicy()) for r in rows[:2])
        )

    out = asyncio.run(run())
    assert _routing_view(out) == _routing_view(rows[:2])
    # Only their quality columns are added: the signals of their text, no decoder confidence.
    quality = set(QUALITY_COLUMN_NAMES)
    assert [{k: v for k, v in r.items() if k not in quality} for r in out] == [
        {k: v for k, v in r.items() if k not in quality} for r in rows[:2]
    ]
    assert all(r["characters"] > 100 and r["scored_tokens"] == 0 for r in out)
