"""The quality columns of page rows on the real engine (tiny random weights): the kept attempt's confidence,
the final text's signals and the suspect flag, on first attempts, accepted retries and text-layer pages;
old output without the columns still reads."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from pipeline.config import PagePolicy, QualityConfig, RenderConfig
from pipeline.samples import noisy_pdf_bytes, sample_pdf_bytes
from pipeline.schema import PAGES_SCHEMA, QUALITY_COLUMN_NAMES, conform
from pipeline.stages.ocr import ocr_pages
from pipeline.stages.page_quality import CONFIDENCE_COLUMNS, NEUTRAL_CONFIDENCE, assess_row, suspect_count
from pipeline.stages.quality import confidence_summary, suspect_reasons, text_signals
from pipeline.stages.rasterizer import decode_page, render_pdf
from pipeline.stages.rows import RunStamp, new_row, to_table
from pipeline.summary import RunSummary
from rtprune.engines.contract import EngineIdentity

torch = pytest.importorskip("torch")
pytest.importorskip("rtprune.engines.hf.engine")

from pipeline_fixtures import ENGINE_OVERRIDES  # noqa: E402

OOM = (torch.OutOfMemoryError,)


@pytest.fixture(scope="module")
def engine():
    """A 2-gram guard: the random model's pages end in `repetition`, so the policy retries them."""
    from rtprune.engines.contract import EngineConfig
    from rtprune.engines.hf.engine import OcrEngine

    config = {**ENGINE_OVERRIDES, "max_new_tokens": 16, "repetition_ngram": 2, "repetition_window": 16}
    return OcrEngine(EngineConfig(**config))


@pytest.fixture(scope="module")
def rendered():
    """Page 0: born-digital (a text layer); page 1: a scan (none)."""
    stamp = RunStamp("r", EngineIdentity("configured-model", "tiny", "rtprune", "h"))
    doc = {"doc_id": "d", "source_uri": "s3://b/d.pdf", "content_hash": "c"}
    rows = []
    for i, data in enumerate([sample_pdf_bytes(1), noisy_pdf_bytes(image_px=120)]):
        page = render_pdf(data, RenderConfig()).pages[0]
        image = {"image": page.data, "width_px": page.width_px, "height_px": page.height_px}
        rows.append(new_row(stamp, doc, i, 2) | image | {"page_format": "png", "text_layer": page.text_layer})
    return rows


@pytest.fixture
def rows(rendered):
    return [dict(r) for r in rendered]


def images(rows):
    return [decode_page(r["image"], r["width_px"], r["height_px"], "png") for r in rows]


def confidence(token_logprobs, quality: QualityConfig) -> dict:
    c = confidence_summary(token_logprobs, quality.low_token_probability)
    return dict(
        zip(
            CONFIDENCE_COLUMNS,
            (c.tokens, c.mean_logprob, c.min_logprob, c.low_probability_share),
            strict=True,
        )
    )


def test_first_attempts_carry_their_confidence_and_their_texts_signals(engine, rows):
    quality = QualityConfig(low_token_probability=0.5)  # not the default: the stage must pass it on
    want = engine.ocr(images(rows))
    out = ocr_pages(engine, rows, sub_batch_size=4, oom=OOM, policy=PagePolicy(retry_on=()), quality=quality)
    for row, result in zip(out, want, strict=True):
        assert row["text"] == result.text and row["scored_tokens"] == result.usage.output_tokens > 0
        for name, value in confidence(result.token_logprobs, quality).items():
            assert row[name] == pytest.approx(value, abs=1e-5), name
        signals = text_signals(row["text"], quality)
        assert {k: row[k] for k in vars(signals)} == vars(signals)
        reasons = suspect_reasons(
            signals, confidence_summary(result.token_logprobs, 0.5), "repetition", quality
        )
        assert row["suspect_reasons"] == ",".join(reasons) and row["suspect"] == bool(reasons)
        assert "repetition" in reasons  # the looping page is suspect for it
    assert to_table(out).schema == PAGES_SCHEMA  # no nulls, the schema's types


def test_a_text_layer_page_has_its_texts_signals_and_no_confidence(engine, rows):
    born, scan = ocr_pages(engine, rows, sub_batch_size=4, oom=OOM, policy=PagePolicy())
    assert born["text_source"] == "text_layer" and born["finish_reason"] == "repetition"
    assert {k: born[k] for k in CONFIDENCE_COLUMNS} == NEUTRAL_CONFIDENCE
    assert born["characters"] > 200 and born["language"] == "en" and born["script"] == "Latin"
    # The failed OCR attempts do not make the text layer's text suspect.
    assert "repetition" not in born["suspect_reasons"] and "low_confidence" not in born["suspect_reasons"]
    assert scan["text_source"] == "ocr" and scan["scored_tokens"] > 0  # the scan keeps its OCR and its score


def test_an_accepted_retry_brings_its_own_confidence(engine, rows):
    """Sampling breaks the random model's loops: the sampled retry's text is kept, with its confidence."""
    born = rows[:1]
    policy = PagePolicy(retry_on=("repetition",), sampled_retries=1, temperature_start=0.7)
    (row,) = ocr_pages(engine, born, sub_batch_size=4, oom=OOM, policy=policy)
    from rtprune.api import PruneConfig

    sampled = engine.ocr(images(born), prune=PruneConfig(method="none"), temperature=0.7)[0]
    assert row["text_source"] == "ocr_retry" and row["text"] == sampled.text
    for name, value in confidence(sampled.token_logprobs, QualityConfig()).items():
        assert row[name] == pytest.approx(value, abs=1e-5), name


def test_error_rows_keep_the_defaults_and_the_count_reads_old_tables(rows):
    error = {**rows[0], "status": "error", "error_stage": "render", "text": ""}
    assert assess_row(error, QualityConfig()) == error
    ok = assess_row(
        {**rows[1], "text": "x", "text_source": "ocr", "finish_reason": "length"}, QualityConfig()
    )
    assert ok["suspect"] and ok["suspect_reasons"] == "hit_token_cap,few_characters"
    table = to_table([error, ok])
    assert suspect_count(table) == 1
    assert suspect_count(table.drop_columns(["suspect"])) == 0


def test_old_parts_and_summaries_still_read(rows):
    """A part written before the quality columns conforms with neutral values; a summary without the new
    counters validates with zeros."""
    old = to_table(rows).drop_columns(QUALITY_COLUMN_NAMES)
    table = conform(old)
    assert table.schema == PAGES_SCHEMA and table.num_rows == len(rows)
    assert table.select(QUALITY_COLUMN_NAMES).to_pylist()[0] == {
        **NEUTRAL_CONFIDENCE,
        "characters": 0,
        "letter_share": 0.0,
        "digit_share": 0.0,
        "repeated_ngram_share": 0.0,
        "language": "",
        "language_probability": 0.0,
        "script": "",
        "suspect": False,
        "suspect_reasons": "",
        "adaptive_rerun": "",
        "adaptive_rerun_gpu_s": 0.0,
    }
    assert pa.Table.equals(table.drop_columns(QUALITY_COLUMN_NAMES), old)
    fields = RunSummary.model_fields
    new = {"pages_suspect", "pages_adaptive_rerun", "pages_adaptive_unpruned", "adaptive_rerun_gpu_s"}
    new |= {"adaptive_rerun_cost_usd"}
    required = {n: f for n, f in fields.items() if n not in new and f.is_required()}
    sample = {n: ("x" if f.annotation is str else 0) for n, f in required.items()}
    summary = RunSummary.model_validate_json(json.dumps(sample))
    assert all(getattr(summary, n) == 0 for n in new)
