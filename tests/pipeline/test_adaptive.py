"""Adaptive pruning on the real engine (tiny random weights): a pruned page forced to low confidence (a
threshold above any real confidence) is read again unpruned, its better attempt kept and both attempts
charged, on static batches and on the one-page-at-a-time (vLLM) stage's policy; the rule that picks the
better attempt; what the summary and the cost report count."""

from __future__ import annotations

import asyncio
import math

import pyarrow as pa
import pytest

from pipeline.config import PagePolicy, QualityConfig
from pipeline.cost.pricing import load_pricing
from pipeline.cost.report import build_tables
from pipeline.stages.adaptive import adaptive_counts, needs_second_look, unpruned_is_better
from pipeline.stages.gpu_share import PHASES, page_seconds
from pipeline.stages.ocr import ocr_pages
from pipeline.stages.page_quality import CONFIDENCE_COLUMNS, confidence_columns
from pipeline.stages.quality import text_signals
from pipeline.stages.rasterizer import decode_page
from pipeline.stages.rows import to_table

torch = pytest.importorskip("torch")
pytest.importorskip("rtprune.engines.hf.engine")

from pipeline_fixtures import ENGINE_OVERRIDES  # noqa: E402
from test_ocr_stage import _rows  # noqa: E402

from rtprune.api import PruneConfig  # noqa: E402

OOM = (torch.OutOfMemoryError,)
# Cap pages end at the cap ("length"); only loops are retried, so the cap pages are adaptive's to re-read.
POLICY = PagePolicy(retry_on=("repetition",), adaptive_min_mean_logprob=0.0)


@pytest.fixture(scope="module")
def engine():
    from rtprune.engines.contract import EngineConfig
    from rtprune.engines.hf.engine import OcrEngine

    return OcrEngine(EngineConfig(**ENGINE_OVERRIDES))  # pruning on (the default), 8 tokens, no loops


class Recorder:
    """The real engine, keeping each ocr call's pruning and results (so a test knows every attempt)."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.calls: list[tuple[str | None, list]] = []

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def ocr(self, images, *, prune=None, temperature=0.0):
        results = self._engine.ocr(images, prune=prune, temperature=temperature)
        self.calls.append((None if prune is None else prune.method, results))
        return results


class OnePageAtATime:
    """The transformers engine behind the async one-page protocol, so the vLLM stage's policy code runs on
    a real engine without vLLM."""

    def __init__(self, engine) -> None:
        self._engine, self.identity, self.prunings = engine, engine.identity, []

    async def ocr_page(self, image, *, prune=None, temperature=0.0):
        self.prunings.append(None if prune is None else prune.method)
        return self._engine.ocr([image], prune=prune, temperature=temperature)[0]

    def close(self) -> None:
        pass


def attempt(result) -> dict:
    return {
        "text": result.text,
        "finish_reason": result.usage.finish_reason,
        **confidence_columns(result.token_logprobs, QualityConfig().low_token_probability),
    }


def test_a_low_confidence_pruned_page_is_reread_unpruned_and_keeps_its_better_attempt(engine):
    rows = _rows()[:2]
    spy = Recorder(engine)
    out = ocr_pages(spy, rows, sub_batch_size=4, oom=OOM, policy=POLICY)
    (first_prune, firsts), (second_prune, seconds) = spy.calls  # one pass each: they batch
    assert (first_prune, second_prune) == (None, "none")
    # Pages of one size: the cost-sorted batch keeps their order, so results line up with the rows.
    for row, first, second in zip(out, firsts, seconds, strict=True):
        assert first.usage.visual_tokens_kept < first.usage.visual_tokens  # the first attempt was pruned
        assert second.usage.visual_tokens_kept == second.usage.visual_tokens  # the re-read was not
        keep = unpruned_is_better(attempt(first), attempt(second), POLICY.retry_on)
        kept = second if keep else first
        assert row["adaptive_rerun"] == ("kept_unpruned" if keep else "kept_pruned")
        assert (row["text"], row["finish_reason"]) == (kept.text, kept.usage.finish_reason)
        for name in CONFIDENCE_COLUMNS:
            assert row[name] == pytest.approx(attempt(kept)[name], abs=1e-5)
        # both attempts charged, the re-read's share named apart
        assert row["ocr_attempts"] == 2 and row["text_source"] == "ocr"
        for name in ("visual_tokens", "visual_tokens_kept", "prompt_tokens", "output_tokens"):
            assert row[name] == getattr(first.usage, name) + getattr(second.usage, name)
        assert row["gpu_s"] == pytest.approx(first.usage.gpu_s + second.usage.gpu_s)
        assert row["adaptive_rerun_gpu_s"] == pytest.approx(page_seconds(second.usage)["gpu_s"])
        assert row["adaptive_rerun_gpu_s"] > 0


def test_confident_unpruned_or_unscored_pages_are_not_reread(engine):
    rows = _rows()[:2]
    spy = Recorder(engine)
    sure = POLICY.model_copy(update={"adaptive_min_mean_logprob": -1e9})  # below any real confidence
    out = ocr_pages(spy, rows, sub_batch_size=4, oom=OOM, policy=sure)
    assert len(spy.calls) == 1 and {r["adaptive_rerun"] for r in out} == {""}
    off = Recorder(engine)  # off by default
    ocr_pages(off, rows, sub_batch_size=4, oom=OOM, policy=PagePolicy(retry_on=("repetition",)))
    assert len(off.calls) == 1
    row = {**out[0], "ocr_attempts": 1}
    assert needs_second_look(row, POLICY)
    assert not needs_second_look(
        {**row, "visual_tokens_kept": row["visual_tokens"]}, POLICY
    )  # nothing pruned
    assert not needs_second_look({**row, "scored_tokens": 0}, POLICY)  # no confidence collected
    assert not needs_second_look({**row, "finish_reason": "repetition"}, POLICY)  # the retry plan's page
    assert not needs_second_look({**row, "text_source": "text_layer"}, POLICY)


def test_the_one_page_stage_rereads_the_same_way(engine):
    from pipeline.stages.ocr_vllm import EngineMeter, ocr_row, ocr_row_with_policy

    row = _rows()[0]
    one = OnePageAtATime(engine)

    async def run():
        meter = EngineMeter(2)
        first = await ocr_row(one, row, meter)
        return first, await ocr_row_with_policy(one, row, meter, (), POLICY)

    first, out = asyncio.run(run())
    assert one.prunings == [None, None, "none"]
    image = decode_page(row["image"], row["width_px"], row["height_px"], "png")
    (second,) = engine.ocr([image], prune=PruneConfig(method="none"))  # what the re-read gave
    keep = unpruned_is_better(first, attempt(second), POLICY.retry_on)
    assert out["adaptive_rerun"] == ("kept_unpruned" if keep else "kept_pruned")
    assert out["text"] == (second.text if keep else first["text"]) and out["ocr_attempts"] == 2
    assert out["visual_tokens"] == 2 * first["visual_tokens"]
    assert out["visual_tokens_kept"] == first["visual_tokens_kept"] + first["visual_tokens"]
    assert out["gpu_s"] == pytest.approx(sum(out[p] for p in PHASES))
    assert 0 < out["adaptive_rerun_gpu_s"] < out["gpu_s"]
    assert out["characters"] == text_signals(out["text"]).characters  # assessed after the re-read


@pytest.mark.parametrize(
    ("pruned", "unpruned", "keep"),
    [
        (("eos", -2.0), ("eos", -1.0), True),  # more confident
        (("eos", -1.0), ("eos", -2.0), False),
        (("eos", -1.0), ("eos", -1.0), True),  # a tie: the unpruned attempt saw the whole page
        (("length", -0.5), ("eos", -3.0), True),  # an attempt at the cap loses to one that ended
        (("eos", -3.0), ("length", -0.5), False),
        (("eos", -3.0), ("repetition", -0.1), False),  # a loop the retry plan counts as failure
        (("length", -2.0), ("length", -1.0), True),  # both at the cap: confidence decides
    ],
)
def test_which_attempt_is_better(pruned, unpruned, keep):
    a, b = ({"finish_reason": r, "mean_logprob": m} for r, m in (pruned, unpruned))
    assert unpruned_is_better(a, b, ("repetition",)) is keep


def test_summary_and_cost_report_count_the_rereads():
    pricing = load_pricing()
    rows = [
        {"adaptive_rerun": "kept_unpruned", "adaptive_rerun_gpu_s": 2.0},
        {"adaptive_rerun": "kept_pruned", "adaptive_rerun_gpu_s": 1.0},
        {"adaptive_rerun": "", "adaptive_rerun_gpu_s": 0.0},
    ]
    table = to_table([_priced(r, i, pricing) for i, r in enumerate(rows)])
    counts = adaptive_counts(table)
    assert counts["pages_adaptive_rerun"] == 2 and counts["pages_adaptive_unpruned"] == 1
    assert counts["adaptive_rerun_gpu_s"] == 3.0
    assert counts["adaptive_rerun_cost_usd"] == pytest.approx(3.0 * pricing.gpu_usd_per_s)
    (by_run,) = build_tables(table, [], [["run"]])
    assert by_run.total.pages_adaptive == 2
    assert by_run.total.adaptive_cost_usd == pytest.approx(3.0 * pricing.gpu_usd_per_s)
    gpu_node = pricing.node_types[pricing.gpu_node_type]
    node_types = {
        **pricing.node_types,
        pricing.gpu_node_type: gpu_node.model_copy(update={"usd_per_hour": 2 * gpu_node.usd_per_hour}),
    }
    doubled = pricing.model_copy(update={"node_types": node_types})
    (repriced,) = build_tables(table, [], [["run"]], doubled)
    assert repriced.total.adaptive_cost_usd == pytest.approx(6.0 * pricing.gpu_usd_per_s)
    old = table.drop_columns(["adaptive_rerun", "adaptive_rerun_gpu_s"])
    assert adaptive_counts(old)["pages_adaptive_rerun"] == 0
    assert build_tables(old, [], [["run"]])[0].total.pages_adaptive == 0
    assert not math.isnan(by_run.total.cost_direct_usd)


def _priced(quality: dict, i: int, pricing) -> dict:
    from pipeline.stages.rows import RunStamp, new_row
    from rtprune.engines.contract import EngineIdentity

    stamp = RunStamp("run-1", EngineIdentity("m", "tiny", "rtprune", "h"))
    row = new_row(stamp, {"doc_id": "d", "source_uri": "u", "content_hash": "c"}, i, 3)
    return row | quality | {"gpu_s": 5.0, "gpu_usd_per_s": pricing.gpu_usd_per_s, "cost_direct_usd": 1.0}


def test_tables_without_rows_count_nothing():
    assert adaptive_counts(pa.table({"x": pa.array([], pa.int64())}))["pages_adaptive_rerun"] == 0
