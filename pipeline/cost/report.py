"""Cost report: what digitization cost, per run, day, model and pruning config, from committed output.

Pure logic over a pages table (PAGES_SCHEMA) and the runs' summaries; the job in jobs/cost_report.py reads
them and writes the files. Costs are either the stored ones or repriced with another pricing table: a row's
direct cost is linear in its gpu_s and cpu_s, and a run's fully loaded cost is linear in its node_seconds,
so both can be recomputed from stored usage without re-running OCR.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.cost.pricing import Pricing
from pipeline.cost.routing_savings import (
    ROUTING_COLUMNS,
    RoutingSavings,
    pooled,
    routing_columns,
    summed_routing,
)
from pipeline.summary import RunSummary

DIMENSIONS = ("run", "day", "model", "prune")
# Aggregating in Arrow first keeps the Python side proportional to runs x settings, not to pages.
_SLICE_KEYS = ["run_id", "model_id", "model_mode", "prune_method", "prune_config_hash"]
_SUMMED = ["status", "gpu_s", "cpu_s", "visual_tokens", "visual_tokens_kept", "cost_direct_usd"]
# The page policy's outcomes, as 0/1 columns summed per slice (see pipeline/stages/page_policy.py), and
# adaptive pruning's re-reads: 0/1, their GPU seconds, and those at each row's GPU rate.
_RECOVERY = ["retried", "recovered", "text_layer", "adaptive", "adaptive_gpu_s", "adaptive_usd"]
# The pages' layout counts (pipeline/schema.py STRUCTURE_COUNTS), summed per slice; 0 for older tables.
_LAYOUT = ["n_tables", "n_formulas", "n_figures"]


class ReportError(ValueError):
    """The inputs cannot be reported as asked (unknown dimension, node type missing from the pricing)."""


@dataclass(frozen=True)
class RunSlice:
    """One run's committed rows for one model/pruning setting, summed."""

    run_id: str
    model: str
    prune: str
    pages_ok: int
    pages_failed: int
    gpu_s: float
    cpu_s: float
    visual_tokens: int
    visual_tokens_kept: int
    cost_direct_usd: float  # as stored in the rows
    pages_retried: int = 0  # more than one OCR attempt (every attempt's cost is in the page's)
    pages_recovered: int = 0  # text from a retry
    pages_text_layer: int = 0  # fell back to the PDF's text layer
    routing: RoutingSavings = RoutingSavings()  # routed pages, and the OCR'd pages' GPU s and stored $
    tables: int = 0  # table, formula and figure blocks of the pages' layouts
    formulas: int = 0
    figures: int = 0
    pages_adaptive: int = 0  # re-read unpruned by adaptive pruning (pipeline/stages/adaptive.py)
    adaptive_gpu_s: float = 0.0  # those re-reads' GPU seconds (inside gpu_s)
    adaptive_cost_usd: float = 0.0  # the same at the rows' GPU rate (inside cost_direct_usd)


@dataclass(frozen=True)
class CostRow:
    group: str
    runs: int
    pages_ok: int
    pages_failed: int
    gpu_s: float
    visual_tokens: int
    visual_tokens_kept: int
    cost_direct_usd: float
    # Runs without a summary (crashed before finishing; the next run completed their work) have no
    # node-seconds: their pages and direct cost count, their cluster time is unknown and left out of the
    # fully loaded figures, which therefore cover only the runs below. nan when no run has a summary.
    cost_fully_loaded_usd: float
    runs_without_summary: int
    pages_ok_with_summary: int
    cost_direct_with_summary_usd: float
    pages_retried: int = 0
    pages_recovered: int = 0
    pages_text_layer: int = 0
    # Routing: pages that took their text layer; the GPU seconds and dollars they avoided, estimated at the
    # mean of the group's OCR'd pages (nan: pages were routed, none OCR'd to estimate from).
    pages_routed: int = 0
    gpu_s_avoided: float = 0.0
    cost_avoided_usd: float = 0.0
    tables: int = 0
    formulas: int = 0
    figures: int = 0
    pages_adaptive: int = 0
    adaptive_cost_usd: float = 0.0  # direct cost of adaptive pruning's unpruned re-reads

    @property
    def gpu_hours(self) -> float:
        return self.gpu_s / 3600.0

    @property
    def usd_per_1k_pages_direct_without_routing(self) -> float:
        """Estimate: the direct cost plus what the routed pages would have cost on the GPU."""
        return _per_1k(self.cost_direct_usd + self.cost_avoided_usd, self.pages_ok)

    @property
    def usd_per_1k_pages_direct(self) -> float:
        return _per_1k(self.cost_direct_usd, self.pages_ok)

    @property
    def usd_per_1k_pages_fully_loaded(self) -> float:
        return _per_1k(self.cost_fully_loaded_usd, self.pages_ok_with_summary)

    @property
    def kept_share(self) -> float:
        return self.visual_tokens_kept / self.visual_tokens if self.visual_tokens else math.nan

    @property
    def utilisation(self) -> float:
        loaded = self.cost_fully_loaded_usd
        return self.cost_direct_with_summary_usd / loaded if loaded and not math.isnan(loaded) else math.nan


@dataclass(frozen=True)
class CostTable:
    dimension: str  # e.g. "day" or "day+model"
    rows: list[CostRow]
    total: CostRow


def _per_1k(cost_usd: float, pages_ok: int) -> float:
    # Per page that came out as text: failed pages cost money too, and that cost lands on the good ones.
    return cost_usd / pages_ok * 1000.0 if pages_ok else math.nan


def model_label(model_id: str, model_mode: str) -> str:
    return f"{model_id} ({model_mode})" if model_mode else model_id


def prune_label(method: str, config_hash: str) -> str:
    return f"{method} [{config_hash}]" if config_hash else method


def run_day(summary: RunSummary) -> str:
    """UTC calendar day the run started (a nightly run that crosses midnight stays on its start day)."""
    started = datetime.fromisoformat(summary.started_at)
    if started.tzinfo is not None:
        started = started.astimezone(UTC)
    return started.date().isoformat()


def slice_runs(pages: pa.Table, summaries: list[RunSummary]) -> list[RunSlice]:
    """Sum the pages per run and setting; a run with a summary but no committed rows (nothing new that
    night) still gets an empty slice, so its cluster cost is reported."""
    grouped = (
        _with_ok_column(pages)
        .group_by(_SLICE_KEYS)
        .aggregate(
            [
                ("status", "count"),
                ("ok", "sum"),
                ("gpu_s", "sum"),
                ("cpu_s", "sum"),
                ("visual_tokens", "sum"),
                ("visual_tokens_kept", "sum"),
                ("cost_direct_usd", "sum"),
                *((c, "sum") for c in _RECOVERY + ROUTING_COLUMNS + _LAYOUT),
            ]
        )
        if pages.num_rows
        else None
    )
    slices = [_slice_of(r) for r in (grouped.to_pylist() if grouped is not None else [])]
    seen = {s.run_id for s in slices}
    for s in summaries:
        if s.run_id not in seen:
            slices.append(
                RunSlice(
                    s.run_id,
                    model_label(s.model_id, s.model_mode),
                    prune_label(s.prune_method, s.prune_config_hash),
                    0,
                    0,
                    0.0,
                    0.0,
                    0,
                    0,
                    0.0,
                )
            )
    return slices


def _slice_of(r: dict[str, Any]) -> RunSlice:
    """One aggregated (run, setting) group as a RunSlice."""
    pages_ok = int(r["ok_sum"] or 0)
    return RunSlice(
        run_id=r["run_id"],
        model=model_label(r["model_id"], r["model_mode"]),
        prune=prune_label(r["prune_method"], r["prune_config_hash"]),
        pages_ok=pages_ok,
        pages_failed=int(r["status_count"]) - pages_ok,
        gpu_s=r["gpu_s_sum"],
        cpu_s=r["cpu_s_sum"],
        visual_tokens=int(r["visual_tokens_sum"]),
        visual_tokens_kept=int(r["visual_tokens_kept_sum"]),
        cost_direct_usd=r["cost_direct_usd_sum"],
        pages_retried=int(r["retried_sum"] or 0),
        pages_recovered=int(r["recovered_sum"] or 0),
        pages_text_layer=int(r["text_layer_sum"] or 0),
        routing=summed_routing(r),
        tables=int(r["n_tables_sum"] or 0),
        formulas=int(r["n_formulas_sum"] or 0),
        figures=int(r["n_figures_sum"] or 0),
        pages_adaptive=int(r["adaptive_sum"] or 0),
        adaptive_gpu_s=float(r["adaptive_gpu_s_sum"] or 0.0),
        adaptive_cost_usd=float(r["adaptive_usd_sum"] or 0.0),
    )


def _with_ok_column(pages: pa.Table) -> pa.Table:
    """Add int 'ok', 'retried', 'recovered' and 'text_layer' columns (1 when the row is one) and the layout
    counts, so one Arrow group_by sums them all. Tables from before the page policy (or the layout) count 0
    for those."""
    import pyarrow.compute as pc

    def flag(mask) -> pa.ChunkedArray | pa.Array:  # a null (a row built without the column) counts 0
        return pc.fill_null(pc.cast(mask, pa.int64()), 0)

    table = pages.select([c for c in _SLICE_KEYS + _SUMMED if c in pages.column_names])
    table = table.append_column("ok", flag(pc.equal(pages["status"], "ok")))
    zeros = pa.array([0] * pages.num_rows, pa.int64())
    has = set(pages.column_names)
    table = table.append_column(
        "retried", flag(pc.greater(pages["ocr_attempts"], 1)) if "ocr_attempts" in has else zeros
    )
    for name, source in (("recovered", "ocr_retry"), ("text_layer", "text_layer")):
        column = flag(pc.equal(pages["text_source"], source)) if "text_source" in has else zeros
        table = table.append_column(name, column)
    routed = {"route", "ocr_attempts", "gpu_usd_per_s"} <= has  # tables from before routing count 0
    for name, column in routing_columns(pages).items() if routed else ((c, zeros) for c in ROUTING_COLUMNS):
        table = table.append_column(name, column)
    for name in _LAYOUT:
        table = table.append_column(name, pc.cast(pages[name], pa.int64()) if name in has else zeros)
    return _with_adaptive_columns(table, pages)


def _with_adaptive_columns(table: pa.Table, pages: pa.Table) -> pa.Table:
    """Add 'adaptive' (1 when adaptive pruning re-read the row's page), 'adaptive_gpu_s' and 'adaptive_usd'
    (that re-read's GPU seconds, and those at the row's GPU rate); 0 for tables from before it."""
    if "adaptive_rerun" not in pages.column_names:
        zeros = pa.array([0.0] * pages.num_rows, pa.float64())
        return (
            table.append_column("adaptive", pa.array([0] * pages.num_rows, pa.int64()))
            .append_column("adaptive_gpu_s", zeros)
            .append_column("adaptive_usd", zeros)
        )
    seconds = pc.fill_null(pages["adaptive_rerun_gpu_s"], 0.0)
    return (
        table.append_column("adaptive", pc.cast(pc.not_equal(pages["adaptive_rerun"], ""), pa.int64()))
        .append_column("adaptive_gpu_s", seconds)
        .append_column("adaptive_usd", pc.multiply(seconds, pc.fill_null(pages["gpu_usd_per_s"], 0.0)))
    )


def runs_without_summary(pages: pa.Table, summaries: list[RunSummary]) -> list[str]:
    """Runs with committed pages but no summary: they stopped before finishing (the next run did the rest)."""
    return sorted(set(pages.column("run_id").unique().to_pylist()) - {s.run_id for s in summaries})


def direct_cost(s: RunSlice, pricing: Pricing | None) -> float:
    if pricing is None:
        return s.cost_direct_usd
    return s.gpu_s * pricing.gpu_usd_per_s + s.cpu_s * pricing.cpu_usd_per_s


def fully_loaded_costs(summaries: list[RunSummary], pricing: Pricing | None) -> dict[str, float]:
    """Each run's cluster cost: as stored, or its node_seconds priced with `pricing`. A node type missing
    from the new table is an error: silently pricing it at zero would make a run look cheaper than it was."""
    if pricing is None:
        return {s.run_id: s.cost_fully_loaded_usd for s in summaries}
    missing = sorted({t for s in summaries for t in s.node_seconds if t not in pricing.node_types})
    if missing:
        raise ReportError(
            f"pricing {pricing.name!r} has no rate for node type(s) {', '.join(missing)} used by the runs; "
            f"add them to its node_types (known: {', '.join(sorted(pricing.node_types))})"
        )
    return {
        s.run_id: sum(sec * pricing.node_usd_per_s(t) for t, sec in s.node_seconds.items()) for s in summaries
    }


def parse_dimensions(spec: str) -> list[list[str]]:
    """'run,day+model' -> [['run'], ['day', 'model']]: one table per comma item, '+' combines keys."""
    tables = []
    for item in filter(None, (p.strip() for p in spec.split(","))):
        keys = [k.strip() for k in item.split("+")]
        unknown = [k for k in keys if k not in DIMENSIONS]
        if unknown:
            raise ReportError(f"unknown grouping {', '.join(unknown)}; choose from {', '.join(DIMENSIONS)}")
        tables.append(keys)
    if not tables:
        raise ReportError("no grouping given")
    return tables


def build_tables(
    pages: pa.Table, summaries: list[RunSummary], dimensions: list[list[str]], pricing: Pricing | None = None
) -> list[CostTable]:
    """One CostTable per grouping. A run's fully loaded cost is shared among its slices by their pages
    (a run normally has one setting, so one slice takes it all)."""
    slices = slice_runs(pages, summaries)
    loaded = fully_loaded_costs(summaries, pricing)
    days = {s.run_id: run_day(s) for s in summaries}
    run_pages: dict[str, int] = defaultdict(int)
    run_slices: dict[str, int] = defaultdict(int)
    for s in slices:
        run_pages[s.run_id] += s.pages_ok + s.pages_failed
        run_slices[s.run_id] += 1

    def share(s: RunSlice) -> float:
        pages_in_run = run_pages[s.run_id]
        return (s.pages_ok + s.pages_failed) / pages_in_run if pages_in_run else 1.0 / run_slices[s.run_id]

    def key(s: RunSlice, dim: str) -> str:
        return {"run": s.run_id, "day": days.get(s.run_id, "unknown"), "model": s.model, "prune": s.prune}[
            dim
        ]

    tables = []
    for keys in dimensions:
        groups: dict[str, list[RunSlice]] = defaultdict(list)
        for s in slices:
            groups[" / ".join(key(s, k) for k in keys)].append(s)
        rows = [_row(g, groups[g], pricing, loaded, share) for g in sorted(groups)]
        tables.append(CostTable("+".join(keys), rows, _row("total", slices, pricing, loaded, share)))
    return tables


def build_trend(
    pages: pa.Table, summaries: list[RunSummary], days: int, until: date, pricing: Pricing | None = None
) -> CostTable:
    """One row per UTC day over the `days` days ending with `until` (inclusive), oldest first, and their
    total. A day without a run is a row of zeros ($ per 1,000 pages n/a): a gap in a nightly schedule must
    show. A run belongs to the day it started; runs without a summary have no known day and are left out."""
    if days < 1:
        raise ReportError(f"the trend needs at least one day, not {days}")
    first = until - timedelta(days=days - 1)
    window = [s for s in summaries if first.isoformat() <= run_day(s) <= until.isoformat()]
    ids = pa.array([s.run_id for s in window], type=pa.string())
    in_window = pages.filter(pc.is_in(pages["run_id"], value_set=ids)) if pages.num_rows else pages
    table = build_tables(in_window, window, [["day"]], pricing)[0]
    by_day = {r.group: r for r in table.rows}
    rows = [
        by_day.get(day) or _no_runs(day)
        for day in ((first + timedelta(days=i)).isoformat() for i in range(days))
    ]
    return CostTable("day", rows, table.total if window else _no_runs("total"))


def _no_runs(group: str) -> CostRow:
    return CostRow(group, 0, 0, 0, 0.0, 0, 0, 0.0, 0.0, 0, 0, 0.0)


def _row(
    group: str,
    slices: list[RunSlice],
    pricing: Pricing | None,
    loaded: dict[str, float],
    share: Callable[[RunSlice], float],
) -> CostRow:
    priced = [s for s in slices if s.run_id in loaded]
    routing = pooled([s.routing for s in slices], pricing.gpu_usd_per_s if pricing else None)
    return CostRow(
        group=group,
        runs=len({s.run_id for s in slices}),
        pages_ok=sum(s.pages_ok for s in slices),
        pages_failed=sum(s.pages_failed for s in slices),
        gpu_s=sum(s.gpu_s for s in slices),
        visual_tokens=sum(s.visual_tokens for s in slices),
        visual_tokens_kept=sum(s.visual_tokens_kept for s in slices),
        cost_direct_usd=sum(direct_cost(s, pricing) for s in slices),
        cost_fully_loaded_usd=sum(loaded[s.run_id] * share(s) for s in priced) if priced else math.nan,
        runs_without_summary=len({s.run_id for s in slices} - set(loaded)),
        pages_ok_with_summary=sum(s.pages_ok for s in priced),
        cost_direct_with_summary_usd=sum(direct_cost(s, pricing) for s in priced),
        pages_retried=sum(s.pages_retried for s in slices),
        pages_recovered=sum(s.pages_recovered for s in slices),
        pages_text_layer=sum(s.pages_text_layer for s in slices),
        pages_routed=routing.pages_routed,
        gpu_s_avoided=routing.gpu_s_avoided,
        cost_avoided_usd=routing.usd_avoided,
        tables=sum(s.tables for s in slices),
        formulas=sum(s.formulas for s in slices),
        figures=sum(s.figures for s in slices),
        pages_adaptive=sum(s.pages_adaptive for s in slices),
        adaptive_cost_usd=sum(adaptive_cost(s, pricing) for s in slices),
    )


def adaptive_cost(s: RunSlice, pricing: Pricing | None) -> float:
    """Direct cost of a slice's adaptive re-reads: as stored, or their GPU seconds repriced."""
    return s.adaptive_cost_usd if pricing is None else s.adaptive_gpu_s * pricing.gpu_usd_per_s
