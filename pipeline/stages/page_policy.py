"""The page policy's logic: which pages get another OCR attempt and with what settings, how attempts add
up on a page, when a page takes its PDF text layer instead, and which documents are flagged. Pure
functions over row dicts and Arrow tables; the loop that runs the attempts is in pipeline/stages/ocr.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.stages.gpu_share import PHASES, page_seconds
from pipeline.stages.page_quality import NEUTRAL_CONFIDENCE, confidence_columns
from pipeline.stages.rows import PageFailure, goes_to_ocr, identity_columns

if TYPE_CHECKING:  # the report and the summary count with this module; they need no torch
    from pipeline.config import PagePolicy, QualityConfig
    from rtprune.api import PruneConfig
    from rtprune.engines.contract import EngineIdentity, PageResult, PageUsage

# The engine's token counts of a page, as PageUsage and the row name them.
TOKEN_COLUMNS = ("visual_tokens", "visual_tokens_kept", "prompt_tokens", "output_tokens")
# Every attempt's usage is added to these, so a page's cost covers all its attempts.
USAGE_COLUMNS = (*TOKEN_COLUMNS, *PHASES, "gpu_s")
# An OCR text that ended like this is not trusted, whatever the policy retried.
FAILED_FINISH = ("repetition", "length")


@dataclass(frozen=True)
class Attempt:
    """Per-call overrides of one retry (the engines' shared contract: ocr(images, prune=, temperature=))."""

    prune: PruneConfig | None  # None: the engine's configured pruning
    temperature: float  # 0: greedy


def retry_plan(policy: PagePolicy, configured_prune_method: str) -> list[Attempt]:
    """The retries a failing page gets, in order. A greedy retry that would repeat the first attempt
    exactly (same pruning, same decoding) is left out: it would cost as much and change nothing."""
    from rtprune.api import PruneConfig

    if not policy.retry_on:
        return []
    unpruned = policy.retry_pruning == "off" and configured_prune_method != "none"
    prune = PruneConfig(method="none") if unpruned else None
    plan = [Attempt(prune, 0.0)] if policy.greedy_retry and unpruned else []
    plan += [
        Attempt(prune, policy.temperature_start + k * policy.temperature_step)
        for k in range(policy.sampled_retries)
    ]
    return plan


def needs_retry(row: dict[str, Any], policy: PagePolicy) -> bool:
    return goes_to_ocr(row) and row["finish_reason"] in policy.retry_on


def usage_columns(usage: PageUsage, seconds: Mapping[str, float]) -> dict[str, Any]:
    """USAGE_COLUMNS of one attempt: the engine's token counts, and `seconds` (the phase columns and gpu_s,
    from pipeline.stages.gpu_share.page_seconds)."""
    return {**{c: getattr(usage, c) for c in TOKEN_COLUMNS}, **seconds}


def low_token_probability(quality: QualityConfig | None) -> float:
    """The confidence's low-probability threshold of `quality` (None: QualityConfig's default)."""
    if quality is None:
        from pipeline.config import QualityConfig

        quality = QualityConfig()
    return quality.low_token_probability


def ocr_result_row(
    row: dict[str, Any],
    result: PageResult,
    identity: EngineIdentity,
    seconds: Mapping[str, float],
    quality: QualityConfig | None = None,
) -> dict[str, Any]:
    """The ok row of a page's first OCR attempt, on either engine: its text, the engine's identity, its
    usage with `seconds` as its GPU seconds, its confidence (pipeline/stages/page_quality.py)."""
    return {
        **row,
        **usage_columns(result.usage, seconds),
        **identity_columns(identity),
        **confidence_columns(result.token_logprobs, low_token_probability(quality)),
        "text": result.text,
        "finish_reason": result.usage.finish_reason,
        "text_source": "ocr",
        "ocr_attempts": 1,
    }


def with_attempt(
    row: dict[str, Any],
    result: PageResult | PageFailure,
    accepted: bool,
    quality: QualityConfig | None = None,
) -> dict[str, Any]:
    """The row after one more attempt (static batches): its usage added (a PageFailure is an attempt that
    raised: no usage was reported), and its text, finish reason and confidence taken when the policy
    accepts it."""
    if isinstance(result, PageFailure):
        return add_attempt(row, None, "", "", accepted=False)
    usage = usage_columns(result.usage, page_seconds(result.usage))
    confidence = confidence_columns(result.token_logprobs, low_token_probability(quality))
    return add_attempt(row, usage, result.text, result.usage.finish_reason, accepted, confidence)


def add_attempt(
    row: dict[str, Any],
    usage: dict[str, Any] | None,
    text: str,
    finish_reason: str,
    accepted: bool,
    confidence: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """with_attempt over plain values: `usage` holds USAGE_COLUMNS (None: the attempt reported none),
    `confidence` the attempt's CONFIDENCE_COLUMNS (None: neutral)."""
    out = {**row, "ocr_attempts": row["ocr_attempts"] + 1}
    if usage:
        out.update({k: row[k] + usage[k] for k in USAGE_COLUMNS})
    if accepted:
        out.update(text=text, finish_reason=finish_reason, text_source="ocr_retry")
        out.update(confidence if confidence is not None else NEUTRAL_CONFIDENCE)
    return out


def usable_text_layer(text: str, policy: PagePolicy) -> bool:
    return len("".join(text.split())) >= policy.text_layer_min_chars


def fall_back(row: dict[str, Any], policy: PagePolicy, last_finish_reason: str) -> dict[str, Any]:
    """A page whose attempts all failed: its text layer when it has one (status stays ok: the page has
    text; finish_reason is the last attempt's, the reason OCR's text was not used). Without one the first
    attempt's text and reason stay, text_source "ocr": a scan keeps what the model read."""
    if policy.text_layer_fallback and usable_text_layer(row.get("text_layer", ""), policy):
        return {
            **row,
            **NEUTRAL_CONFIDENCE,  # no decoder read the text layer
            "text": row["text_layer"],
            "text_source": "text_layer",
            "finish_reason": last_finish_reason,
        }
    return row


def failed_pages(table: pa.Table) -> pa.ChunkedArray:
    """Per row: an error, the text layer instead of OCR, or OCR text that still ended in a loop or at the cap."""
    ok = pc.equal(table["status"], "ok")
    loop = pc.and_(
        pc.equal(table["text_source"], "ocr"), pc.is_in(table["finish_reason"], pa.array(FAILED_FINISH))
    )
    return pc.or_(pc.invert(ok), pc.or_(pc.equal(table["text_source"], "text_layer"), loop))


def flag_document(table: pa.Table, max_failed_share: float) -> pa.Table:
    """One whole document's rows with doc_flagged set on all of them when its failed share exceeds the
    threshold (a document-level error row is a failed share of 1)."""
    share = (
        pc.sum(pc.cast(failed_pages(table), pa.int64())).as_py() / table.num_rows if table.num_rows else 0.0
    )
    i = table.schema.get_field_index("doc_flagged")
    return table.set_column(
        i, table.schema.field(i), pa.array([share > max_failed_share] * table.num_rows, pa.bool_())
    )


def recovery_counts(table: pa.Table) -> dict[str, int]:
    """Pages retried (more than one OCR attempt), recovered by a retry, and given their text layer."""

    def count(mask: Any) -> int:
        return int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0) if table.num_rows else 0

    return {
        "pages_retried": count(pc.greater(table["ocr_attempts"], 1)),
        "pages_recovered": count(pc.equal(table["text_source"], "ocr_retry")),
        "pages_text_layer": count(pc.equal(table["text_source"], "text_layer")),
    }
