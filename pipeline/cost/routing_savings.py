"""What routing pages to their text layer saved, as an estimate from the pages that did go to OCR: a routed
page would have cost what an OCR'd page of the same run cost on average (GPU seconds and their dollars).
An estimate, not a measurement: born-digital pages are often lighter than the scans that went to OCR, and
the pixmaps the routed pages did not need (CPU) are not added back. Pure logic over page tables."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the console's progress line imports RoutingSavings before any work: pyarrow lazily
    import pyarrow as pa

ROUTED = "text_layer"  # the route column's value for a page that took its text layer
# The per-row numbers routing_columns makes, to be summed per group.
ROUTING_COLUMNS = ["routed", "ocr_page", "gpu_s_ocr", "gpu_usd_ocr"]


@dataclass(frozen=True)
class RoutingSavings:
    """Routed pages and the OCR'd pages the estimate is made from."""

    pages_routed: int = 0
    pages_ocr: int = 0  # pages that went through the OCR engine (at least one attempt)
    gpu_s_ocr: float = 0.0  # their GPU seconds, every attempt
    gpu_usd_ocr: float = 0.0  # those seconds' cost

    @property
    def gpu_s_per_ocr_page(self) -> float:
        """Mean GPU seconds of an OCR'd page; nan when no page went to OCR."""
        return self.gpu_s_ocr / self.pages_ocr if self.pages_ocr else math.nan

    @property
    def gpu_s_avoided(self) -> float:
        """Routed pages x the mean GPU seconds of an OCR'd page: 0 without routed pages, nan when pages were
        routed but none went to OCR (nothing to estimate from)."""
        return self.pages_routed * self.gpu_s_per_ocr_page if self.pages_routed else 0.0

    @property
    def usd_avoided(self) -> float:
        if not self.pages_routed:
            return 0.0
        return self.pages_routed * self.gpu_usd_ocr / self.pages_ocr if self.pages_ocr else math.nan

    def __add__(self, other: RoutingSavings) -> RoutingSavings:
        """Pooled: the sum's estimate uses the mean over both sets of OCR'd pages."""
        return RoutingSavings(
            self.pages_routed + other.pages_routed,
            self.pages_ocr + other.pages_ocr,
            self.gpu_s_ocr + other.gpu_s_ocr,
            self.gpu_usd_ocr + other.gpu_usd_ocr,
        )


def pooled(parts: list[RoutingSavings], gpu_usd_per_s: float | None = None) -> RoutingSavings:
    """The parts summed; with `gpu_usd_per_s` their OCR'd pages' GPU seconds are repriced at that rate."""
    total = RoutingSavings()
    for r in parts:
        usd = r.gpu_usd_ocr if gpu_usd_per_s is None else r.gpu_s_ocr * gpu_usd_per_s
        total += RoutingSavings(r.pages_routed, r.pages_ocr, r.gpu_s_ocr, usd)
    return total


def routing_columns(table: pa.Table, gpu_usd_per_s: float | None = None) -> dict[str, pa.ChunkedArray]:
    """Per row, as numbers to sum: routed (0/1), ocr_page (0/1), gpu_s_ocr and gpu_usd_ocr (the row's GPU
    seconds and their cost when it went to OCR, else 0). The cost uses `gpu_usd_per_s`, or the row's own
    rate. A table without a route column (before routing) has no routed page."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    routed = (
        pc.fill_null(pc.cast(pc.equal(table["route"], ROUTED), pa.int64()), 0)
        if "route" in table.column_names
        else pa.chunked_array([pa.array([0] * n, pa.int64())])
    )
    ocr = pc.fill_null(pc.greater(table["ocr_attempts"], 0), False)
    gpu_s_ocr = pc.if_else(ocr, table["gpu_s"], 0.0)
    rate = table["gpu_usd_per_s"] if gpu_usd_per_s is None else gpu_usd_per_s
    return {
        "routed": routed,
        "ocr_page": pc.cast(ocr, pa.int64()),
        "gpu_s_ocr": gpu_s_ocr,
        "gpu_usd_ocr": pc.multiply(gpu_s_ocr, rate),
    }


def summed_routing(sums: dict[str, Any]) -> RoutingSavings:
    """RoutingSavings from an Arrow group_by row holding the sums of ROUTING_COLUMNS ("routed_sum", ...)."""
    routed, ocr, gpu_s, usd = (sums[c + "_sum"] or 0 for c in ROUTING_COLUMNS)
    return RoutingSavings(int(routed), int(ocr), float(gpu_s), float(usd))


def routing_savings(table: pa.Table, gpu_usd_per_s: float | None = None) -> RoutingSavings:
    """Routing's counts and estimate over a pages table (needs route, ocr_attempts, gpu_s and, without
    `gpu_usd_per_s`, gpu_usd_per_s)."""
    import pyarrow.compute as pc

    if not table.num_rows:
        return RoutingSavings()
    columns = routing_columns(table, gpu_usd_per_s)
    sums = {name: pc.sum(values).as_py() or 0 for name, values in columns.items()}
    return RoutingSavings(
        int(sums["routed"]), int(sums["ocr_page"]), float(sums["gpu_s_ocr"]), float(sums["gpu_usd_ocr"])
    )
