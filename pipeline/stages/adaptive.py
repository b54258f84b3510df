"""Adaptive pruning: prune every page, pay full price only where the model says it was unsure.

A page whose pruned attempt ended normally but with a mean token log-probability under the page policy's
`adaptive_min_mean_logprob` is read again with every visual token, and the better of the two attempts is
kept; the page is charged both. Which is better: an attempt that ended in a loop or at the token cap
loses to one that did not, and an unpruned attempt that ended in one of the policy's retry reasons is
never kept (the retry plan treats that as a failure); otherwise the higher mean log-probability wins, and
a tie goes to the unpruned attempt (it saw the whole page). Mean log-probabilities of two readings of one
page are comparable: the same model scores the same page, and the mean does not grow with length.

Pure functions over row dicts and Arrow tables; the stages run the re-reads (pipeline/stages/ocr.py on
static batches, pipeline/stages/ocr_vllm.py one page at a time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.stages.page_policy import FAILED_FINISH, add_attempt
from pipeline.stages.page_quality import CONFIDENCE_COLUMNS

if TYPE_CHECKING:  # the summary and the report count with this module; they need no torch
    from pipeline.config import PagePolicy

KEPT_UNPRUNED, KEPT_PRUNED = "kept_unpruned", "kept_pruned"


def needs_second_look(row: Mapping[str, Any], policy: PagePolicy) -> bool:
    """Whether adaptive pruning re-reads this page unpruned: on, a first OCR attempt that kept fewer
    visual tokens than the page has, ended in none of the retry plan's reasons (those pages get the retry
    plan instead), and was scored with a mean log-probability under the threshold."""
    threshold = policy.adaptive_min_mean_logprob
    return (
        threshold is not None
        and row["status"] == "ok"
        and row["text_source"] == "ocr"
        and row["ocr_attempts"] == 1
        and row["finish_reason"] not in policy.retry_on
        and row["visual_tokens_kept"] < row["visual_tokens"]
        and row["scored_tokens"] > 0
        and row["mean_logprob"] < threshold
    )


def unpruned_is_better(
    pruned: Mapping[str, Any], unpruned: Mapping[str, Any], retry_on: tuple[str, ...]
) -> bool:
    """The module's rule over two attempts' finish_reason and mean_logprob (row columns)."""
    if unpruned["finish_reason"] in retry_on:
        return False
    pruned_failed = pruned["finish_reason"] in FAILED_FINISH
    if pruned_failed != (unpruned["finish_reason"] in FAILED_FINISH):
        return pruned_failed
    return unpruned["mean_logprob"] >= pruned["mean_logprob"]


def with_second_look(
    row: dict[str, Any],
    usage: Mapping[str, Any] | None,
    unpruned: Mapping[str, Any] | None,
    policy: PagePolicy,
) -> dict[str, Any]:
    """The row after its unpruned re-read: its usage added (`usage`: USAGE_COLUMNS, None when the attempt
    reported none), adaptive_rerun saying which attempt stayed and adaptive_rerun_gpu_s what the re-read
    cost; the unpruned attempt's text, finish reason and confidence (`unpruned`: those columns; None when
    it failed) taken when it is the better one. text_source stays "ocr": a greedy reading of the page."""
    keep = unpruned is not None and unpruned_is_better(row, unpruned, policy.retry_on)
    out = add_attempt(row, dict(usage) if usage else None, "", "", accepted=False)
    out["adaptive_rerun"] = KEPT_UNPRUNED if keep else KEPT_PRUNED
    out["adaptive_rerun_gpu_s"] = float(usage["gpu_s"]) if usage else 0.0
    if keep and unpruned is not None:
        out.update({k: unpruned[k] for k in ("text", "finish_reason", *CONFIDENCE_COLUMNS)})
    return out


def adaptive_counts(table: pa.Table) -> dict[str, Any]:
    """Pages re-read unpruned, how many of them kept the unpruned text, and the re-reads' GPU seconds and
    direct cost (at each row's GPU rate). Tables without the columns (older output) count 0."""
    if not table.num_rows or "adaptive_rerun" not in table.column_names:
        return {
            "pages_adaptive_rerun": 0,
            "pages_adaptive_unpruned": 0,
            "adaptive_rerun_gpu_s": 0.0,
            "adaptive_rerun_cost_usd": 0.0,
        }

    def total(values: Any) -> float:
        return float(pc.sum(values).as_py() or 0)

    seconds = table["adaptive_rerun_gpu_s"]
    return {
        "pages_adaptive_rerun": int(total(pc.cast(pc.not_equal(table["adaptive_rerun"], ""), pa.int64()))),
        "pages_adaptive_unpruned": int(
            total(pc.cast(pc.equal(table["adaptive_rerun"], KEPT_UNPRUNED), pa.int64()))
        ),
        "adaptive_rerun_gpu_s": total(seconds),
        "adaptive_rerun_cost_usd": total(pc.multiply(seconds, table["gpu_usd_per_s"])),
    }
