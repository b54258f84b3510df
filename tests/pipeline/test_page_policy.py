"""The page policy on the real engine (tiny random weights, which loop within a few tokens): retries with
pruning off or sampling, every attempt's usage on the page, the text-layer fallback, and what a scan keeps."""

from __future__ import annotations

import pytest

from pipeline.config import PagePolicy, RenderConfig
from pipeline.samples import noisy_pdf_bytes, sample_pdf_bytes
from pipeline.stages.ocr import ocr_pages
from pipeline.stages.page_policy import retry_plan
from pipeline.stages.rasterizer import decode_page, render_pdf
from pipeline.stages.rows import RunStamp, new_row
from rtprune.engines.contract import EngineIdentity

torch = pytest.importorskip("torch")
pytest.importorskip("rtprune.engines.hf.engine")

from pipeline_fixtures import ENGINE_OVERRIDES  # noqa: E402

OOM = (torch.OutOfMemoryError,)
USAGE = (
    "visual_tokens",
    "visual_tokens_kept",
    "prompt_tokens",
    "output_tokens",
    "encode_s",
    "prune_s",
    "prefill_s",
    "decode_s",
    "gpu_s",
)


@pytest.fixture(scope="module")
def engine():
    """A 2-gram repetition guard: the random model's pages end in `repetition`, pruned or not."""
    from rtprune.engines.contract import EngineConfig
    from rtprune.engines.hf.engine import OcrEngine

    return OcrEngine(
        EngineConfig(
            **{**ENGINE_OVERRIDES, "max_new_tokens": 16, "repetition_ngram": 2, "repetition_window": 16}
        )
    )


class Spy:
    """The real engine, recording each ocr call's batch size and overrides (`raise_on_retry`: retries
    raise, as an engine that fails on a page would)."""

    def __init__(self, engine, raise_on_retry: bool = False) -> None:
        self._engine, self._raise = engine, raise_on_retry
        self.calls: list[tuple[int, str | None, float]] = []

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def ocr(self, images, *, prune=None, temperature=0.0):
        self.calls.append((len(images), None if prune is None else prune.method, temperature))
        if self._raise and (prune is not None or temperature > 0):
            raise ValueError("retry refused")
        return self._engine.ocr(images, prune=prune, temperature=temperature)


@pytest.fixture(scope="module")
def pages():
    return _rows()


@pytest.fixture
def rows(pages):
    return [dict(r) for r in pages]


def _rows():
    """Page 0: born-digital (real text layer); page 1: a scan (image only, no text layer)."""
    stamp = RunStamp("r", EngineIdentity("configured-model", "tiny", "rtprune", "h"))
    doc = {"doc_id": "d", "source_uri": "s3://b/d.pdf", "content_hash": "c"}
    rows = []
    for i, data in enumerate([sample_pdf_bytes(1), noisy_pdf_bytes(image_px=120)]):
        page = render_pdf(data, RenderConfig()).pages[0]
        rows.append(
            new_row(stamp, doc, i, 2)
            | {
                "image": page.data,
                "width_px": page.width_px,
                "height_px": page.height_px,
                "page_format": "png",
                "text_layer": page.text_layer,
                "render_s": 0.1,
            }
        )
    return rows


def _images(rows):
    return [decode_page(r["image"], r["width_px"], r["height_px"], "png") for r in rows]


def _none():
    from rtprune.api import PruneConfig

    return PruneConfig(method="none")


def test_the_born_digital_page_has_a_text_layer_and_the_scan_has_none(rows):
    born, scan = rows
    assert "Section 1" in born["text_layer"] and len(born["text_layer"]) > 200
    assert scan["text_layer"].strip() == ""
    capped = render_pdf(sample_pdf_bytes(1), RenderConfig(text_layer_max_chars=40)).pages[0]
    assert len(capped.text_layer) == 40 and born["text_layer"].startswith(capped.text_layer)
    assert render_pdf(sample_pdf_bytes(1), RenderConfig(text_layer_max_chars=0)).pages[0].text_layer == ""


def test_a_looping_page_is_retried_unpruned_then_takes_its_text_layer_and_a_scan_keeps_its_ocr(engine, rows):
    first = engine.ocr(_images(rows))  # greedy decoding is deterministic: what the first attempt gives
    unpruned = engine.ocr(_images(rows), prune=_none())
    assert {r.usage.finish_reason for r in first + unpruned} <= {"repetition", "length"}  # the model loops
    assert first[0].usage.visual_tokens_kept < first[0].usage.visual_tokens  # pruning is on by default

    spy = Spy(engine)
    born, scan = ocr_pages(spy, rows, sub_batch_size=4, oom=OOM, policy=PagePolicy())
    assert spy.calls == [(2, None, 0.0), (2, "none", 0.0)]  # one batch each: first attempt, unpruned retry

    # Every attempt's usage is on the page; the retry saw every visual token (pruning really off).
    for row, a, b in ((born, first[0], unpruned[0]), (scan, first[1], unpruned[1])):
        assert row["ocr_attempts"] == 2 and row["status"] == "ok"
        assert row["visual_tokens"] == 2 * a.usage.visual_tokens
        assert row["visual_tokens_kept"] - a.usage.visual_tokens_kept == b.usage.visual_tokens
        assert row["output_tokens"] == a.usage.output_tokens + b.usage.output_tokens
        assert row["prompt_tokens"] == a.usage.prompt_tokens + b.usage.prompt_tokens
        assert row["gpu_s"] == pytest.approx(
            row["encode_s"] + row["prune_s"] + row["prefill_s"] + row["decode_s"]
        )
        assert row["gpu_s"] > a.usage.gpu_s
    assert born["text_source"] == "text_layer" and born["text"] == rows[0]["text_layer"]
    assert (
        born["finish_reason"] == unpruned[0].usage.finish_reason
    )  # the last attempt's: why OCR's text was not used
    assert (scan["text_source"], scan["text"], scan["finish_reason"]) == (
        "ocr",
        first[1].text,
        first[1].usage.finish_reason,
    )


def test_a_sampled_retry_recovers_a_page(engine, rows):
    """Sampling breaks the random model's loops: with only `repetition` counted as failure, the sampled
    attempt (which runs to the cap) is accepted and its text kept."""
    born = rows[:1]
    assert engine.ocr(_images(born))[0].usage.finish_reason == "repetition"
    policy = PagePolicy(retry_on=("repetition",), sampled_retries=2, temperature_start=0.7)
    spy = Spy(engine)
    out = ocr_pages(spy, born, sub_batch_size=4, oom=OOM, policy=policy)
    assert spy.calls == [(1, None, 0.0), (1, "none", 0.0), (1, "none", 0.7)]  # recovered: no second sample
    sampled = engine.ocr(_images(born), prune=_none(), temperature=0.7)  # seeded: the same text again
    for row, s in zip(out, sampled, strict=True):
        assert row["text_source"] == "ocr_retry" and row["ocr_attempts"] == 3
        assert row["text"] == s.text and row["finish_reason"] == s.usage.finish_reason == "length"
        assert row["output_tokens"] > s.usage.output_tokens  # the failed attempts are counted too


def test_a_retry_that_raises_leaves_the_page_as_it_was_plus_the_attempt(engine, rows):
    first = engine.ocr(_images(rows))
    born, scan = ocr_pages(
        Spy(engine, raise_on_retry=True), rows, sub_batch_size=4, oom=OOM, policy=PagePolicy()
    )
    for row, a in ((born, first[0]), (scan, first[1])):
        assert row["status"] == "ok" and row["ocr_attempts"] == 2
        assert row["output_tokens"] == a.usage.output_tokens  # a failed call reported no usage
    assert born["text_source"] == "text_layer" and scan["text_source"] == "ocr"


def test_without_retries_or_fallback_pages_keep_their_first_attempt(engine, rows):
    spy = Spy(engine)
    out = ocr_pages(spy, rows, sub_batch_size=4, oom=OOM, policy=PagePolicy(retry_on=()))
    assert len(spy.calls) == 1
    assert [(r["text_source"], r["ocr_attempts"]) for r in out] == [("ocr", 1)] * 2
    assert {r["finish_reason"] for r in out} <= {"repetition", "length"}


def test_retry_plan():
    none = _none()
    plan = retry_plan(PagePolicy(sampled_retries=2, temperature_start=0.4, temperature_step=0.3), "rtprune")
    assert [(a.prune, a.temperature) for a in plan] == [(none, 0.0), (none, 0.4), (none, pytest.approx(0.7))]
    assert retry_plan(PagePolicy(), "none") == []  # pruning already off: a greedy retry would repeat itself
    assert retry_plan(PagePolicy(retry_pruning="configured"), "rtprune") == []
    sampled = retry_plan(PagePolicy(retry_pruning="configured", sampled_retries=1), "rtprune")
    assert [(a.prune, a.temperature) for a in sampled] == [(None, 0.4)]
    assert retry_plan(PagePolicy(retry_on=(), sampled_retries=3), "rtprune") == []
