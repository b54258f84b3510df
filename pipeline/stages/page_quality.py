"""The quality columns of page rows (pipeline/schema.py): the confidence of the attempt whose text a page
keeps, set when that attempt is taken, and the text signals and suspect flag, set once per page from its
final text when the OCR stage is done with it. Pure functions over row dicts; the signals themselves are
pipeline/stages/quality.py's.

A page that took its PDF text layer has text signals and a neutral confidence (no decoder read that text),
and the finish reason of its failed OCR attempts does not make its text suspect. Error rows keep the
schema's defaults (0, '', False).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.stages.quality import ConfidenceSummary, confidence_summary, suspect_reasons, text_signals

if TYPE_CHECKING:  # the page policy (and the summary that counts with it) loads no torch
    from pipeline.config import QualityConfig

# The decoder's confidence of the kept attempt, as row columns.
CONFIDENCE_COLUMNS = ("scored_tokens", "mean_logprob", "min_logprob", "low_probability_share")
# What a page whose text no decoder scored carries.
NEUTRAL_CONFIDENCE: dict[str, Any] = {
    "scored_tokens": 0,
    "mean_logprob": 0.0,
    "min_logprob": 0.0,
    "low_probability_share": 0.0,
}


def confidence_columns(token_logprobs: Sequence[float], low_token_probability: float) -> dict[str, Any]:
    """CONFIDENCE_COLUMNS of one attempt from its tokens' log-probabilities (PageResult.token_logprobs)."""
    c = confidence_summary(token_logprobs, low_token_probability)
    return {
        "scored_tokens": c.tokens,
        "mean_logprob": c.mean_logprob,
        "min_logprob": c.min_logprob,
        "low_probability_share": c.low_probability_share,
    }


def row_confidence(row: Mapping[str, Any]) -> ConfidenceSummary:
    """The confidence a row carries, as the summary suspect_reasons reads."""
    return ConfidenceSummary(
        tokens=row["scored_tokens"],
        mean_logprob=row["mean_logprob"],
        min_logprob=row["min_logprob"],
        low_probability_share=row["low_probability_share"],
    )


def assess_row(row: dict[str, Any], config: QualityConfig) -> dict[str, Any]:
    """An ok row with the signals of its final text, `suspect` and `suspect_reasons` set (comma-separated,
    in quality.REASONS order); any other row unchanged."""
    if row["status"] != "ok":
        return row
    signals = text_signals(row["text"], config)
    ocr_finish = "" if row["text_source"] == "text_layer" else row["finish_reason"]
    reasons = suspect_reasons(signals, row_confidence(row), ocr_finish, config)
    return {**row, **asdict(signals), "suspect": bool(reasons), "suspect_reasons": ",".join(reasons)}


def assess_rows(rows: Sequence[dict[str, Any]], config: QualityConfig) -> list[dict[str, Any]]:
    return [assess_row(row, config) for row in rows]


def suspect_count(table: pa.Table) -> int:
    """Suspect pages of a pages table (0 for output written before the column existed)."""
    if not table.num_rows or "suspect" not in table.column_names:
        return 0
    return int(pc.sum(pc.cast(table["suspect"], pa.int64())).as_py() or 0)
