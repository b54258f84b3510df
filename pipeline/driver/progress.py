"""Progress of one digitize run, as pure logic: counts, rate, ETA and the one-line text the console shows.
No I/O and no clock of its own (times are passed in), so every number here is testable."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.cost.routing_savings import RoutingSavings
from pipeline.redact import escape_controls, loggable_name


@dataclass(frozen=True)
class ProgressSnapshot:
    documents_done: int
    documents_total: int
    pages_done: int  # rows out of OCR: pages, plus one per document that failed before its pages
    pages_failed: int
    elapsed_s: float
    pages_per_s: float | None  # None until there is something to divide
    eta_s: float | None  # None until a document is done (a run's pages per document are unknown before)
    pages_routed: int = 0  # pages that took their own text layer (no OCR)
    gpu_s_avoided: float | None = 0.0  # estimate: routed x mean GPU s per OCR'd page; None: none OCR'd yet


class ProgressCounter:
    """Totals of a run fed batch by batch; the rate is over the whole run so far (steady enough for a
    batch pipeline whose output arrives in bursts), the ETA scales elapsed time by documents left."""

    def __init__(self, documents_total: int, started_s: float) -> None:
        self.documents_total = documents_total
        self.started_s = started_s
        self.documents_done = 0
        self.pages_done = 0
        self.pages_failed = 0
        self.routing = RoutingSavings()

    def add(
        self, pages: int, pages_failed: int, documents_done: int, routing: RoutingSavings | None = None
    ) -> None:
        """`pages`/`pages_failed` (and `routing`'s counts) arrived since the last call; `documents_done` is
        the running total."""
        self.pages_done += pages
        self.pages_failed += pages_failed
        self.routing += routing or RoutingSavings()
        self.documents_done = max(self.documents_done, min(documents_done, self.documents_total))

    def snapshot(self, now_s: float) -> ProgressSnapshot:
        elapsed_s = max(0.0, now_s - self.started_s)
        rate = self.pages_done / elapsed_s if self.pages_done and elapsed_s > 0 else None
        return ProgressSnapshot(
            self.documents_done,
            self.documents_total,
            self.pages_done,
            self.pages_failed,
            elapsed_s,
            rate,
            eta_seconds(self.documents_done, self.documents_total, elapsed_s),
            self.routing.pages_routed,
            None if math.isnan(self.routing.gpu_s_avoided) else self.routing.gpu_s_avoided,
        )


def eta_seconds(done: int, total: int, elapsed_s: float) -> float | None:
    """Time left if the remaining documents go at the pace of the finished ones; 0 when all are done."""
    if done >= total:
        return 0.0
    if done <= 0 or elapsed_s <= 0:
        return None
    return elapsed_s / done * (total - done)


def format_duration(seconds: float | None) -> str:
    """7 -> "7s", 125 -> "2m05s", 7384 -> "2h03m"; None -> "?"."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


STARTING = "starting the OCR engine"


def format_progress(snap: ProgressSnapshot) -> str:
    """One line: documents 3/6 | pages 9 (1 failed) | 0.8 pages/s | elapsed 12s | ETA 12s; with routing,
    pages 9 (1 failed, 6 routed, ~4.2 GPU-s avoided); before the first page comes back, "starting the OCR
    engine" in place of the rate."""
    rate = "? pages/s" if snap.pages_per_s is None else f"{snap.pages_per_s:.2f} pages/s"
    if snap.pages_done == 0 and snap.documents_done < snap.documents_total:
        rate = STARTING  # the OCR actors load their engine (minutes for vLLM) before any page comes back
    notes = [f"{snap.pages_failed} failed"] if snap.pages_failed else []
    if snap.pages_routed:
        avoided = "?" if snap.gpu_s_avoided is None else f"~{snap.gpu_s_avoided:.1f}"
        notes += [f"{snap.pages_routed} routed", f"{avoided} GPU-s avoided"]
    failed = f" ({', '.join(notes)})" if notes else ""
    return (
        f"documents {snap.documents_done}/{snap.documents_total} | pages {snap.pages_done}{failed} | "
        f"{rate} | elapsed {format_duration(snap.elapsed_s)} | ETA {format_duration(snap.eta_s)}"
    )


def format_failure(source_uri: str, page_index: int, stage: str, error: str, max_chars: int = 160) -> str:
    """One failed row for the console: where (the name repr()-escaped), which stage, why (on one line,
    control characters escaped, cut to max_chars; the full reason is in the output's error column)."""
    name = loggable_name(source_uri)
    where = name if page_index < 0 else f"{name} page {page_index + 1}"
    reason = escape_controls(" ".join(error.split()))
    if len(reason) > max_chars:
        reason = reason[: max_chars - 3] + "..."
    return f"failed: {where}: {stage}: {reason}"
