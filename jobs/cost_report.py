"""What did digitization cost? Reads committed output across runs and reports it.

    python -m jobs.cost_report --output s3://bucket/ocr [--pricing my_prices.yaml] [--by run,day,model,prune]
                               [--days 30] [--until 2025-11-30]
                               [--out-dir report/] [--storage-options '{"client_kwargs": {...}}']

Prints one table per grouping and the daily trend, and writes report/cost_report.png, report/cost_trend.png
and report/cost_report.md. With --pricing the stored usage (GPU/CPU seconds per page, node-seconds per
run) is repriced; no OCR is re-run.
"""

from __future__ import annotations

import json
import math
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from jobs.cli import ConfigError, JobParser, job_main, validate
from pipeline.cost.report import (
    CostTable,
    ReportError,
    build_tables,
    build_trend,
    parse_dimensions,
    runs_without_summary,
)
from pipeline.cost.report_text import format_markdown, format_text

if TYPE_CHECKING:
    import pyarrow as pa

    from pipeline.cost.pricing import Pricing
    from pipeline.summary import RunSummary

CHART_NAME = "cost_report.png"
TREND_CHART_NAME = "cost_trend.png"
MARKDOWN_NAME = "cost_report.md"
ROUTING_NOTE = (
    "Routed: pages that took their own text layer and never went to OCR. ~$/1k no routing and ~GPU-h "
    "avoided are estimates: each routed page priced at the mean GPU seconds (and their cost) of the OCR'd "
    "pages in the same group; the routed pages' CPU is as measured, their skipped rasterizing not added back."
)
# More bars than this make labels unreadable; the chart shows the last groups (newest runs/days sort last).
MAX_CHART_GROUPS = 25


class CostReportConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    output: str  # the digitize job's output URI (any fsspec URI)
    storage_options: dict = Field(default_factory=dict)  # fsspec options, e.g. an S3 endpoint
    pricing: Path | None = None  # None: costs as stored at run time
    by: str = ",".join(("run", "day", "model", "prune"))  # one table per item; '+' combines keys
    out_dir: Path = Path("report")
    # Days in the daily trend (0: no trend). A longer window shows slow drifts, a shorter one reads better.
    days: int = Field(default=30, ge=0)
    until: date | None = None  # last day of the trend (UTC); None: today


def parse_args(argv: list[str] | None = None) -> CostReportConfig:
    p = JobParser(prog="python -m jobs.cost_report", description=__doc__.splitlines()[0])
    p.add_argument("--output", required=True, help="output URI the digitize job wrote to")
    p.add_argument("--pricing", type=Path, help="reprice stored usage with this pricing YAML")
    p.add_argument(
        "--by",
        default=CostReportConfig.model_fields["by"].default,
        help="groupings, comma-separated; '+' combines (e.g. run,day+model)",
    )
    p.add_argument("--out-dir", type=Path, default=Path("report"), help="where the PNG and Markdown go")
    p.add_argument("--storage-options", default="{}", help="fsspec storage options as JSON")
    p.add_argument(
        "--days",
        type=int,
        default=CostReportConfig.model_fields["days"].default,
        help="days in the daily trend of pages and $ per 1,000 pages (0: no trend)",
    )
    p.add_argument(
        "--until", type=date.fromisoformat, help="last day of the trend, YYYY-MM-DD (default: today, UTC)"
    )
    a = p.parse_args(argv)
    try:
        storage_options = json.loads(a.storage_options)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--storage-options: not valid JSON ({exc.msg} at column {exc.colno})") from None
    return validate(
        CostReportConfig,
        {
            "output": a.output,
            "pricing": a.pricing,
            "by": a.by,
            "out_dir": a.out_dir,
            "storage_options": storage_options,
            "days": a.days,
            "until": a.until,
        },
    )


def pricing_note(pages: pa.Table, summaries: list[RunSummary], pricing: Pricing | None) -> str:
    if pricing is not None:
        return f"Repriced with pricing table `{pricing.name}` from stored usage."
    names = sorted(
        set(pages.column("pricing_name").unique().to_pylist()) | {s.pricing_name for s in summaries}
    )
    return f"Costs as stored at run time (pricing: {', '.join(f'`{n}`' for n in names) or 'none'})."


def render_chart(tables: list[CostTable], path: Path) -> None:
    """One panel per grouping: $ per 1,000 pages, direct next to fully loaded (the gap is idle cluster)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters or in CI
    import matplotlib.pyplot as plt

    heights = [max(1.6, 0.42 * min(len(t.rows), MAX_CHART_GROUPS) + 1.2) for t in tables]
    fig, axes = plt.subplots(
        len(tables), 1, figsize=(9, sum(heights)), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for ax, table in zip(axes[:, 0], tables, strict=True):
        rows = table.rows[-MAX_CHART_GROUPS:]
        y = range(len(rows))
        direct = [_zero_if_nan(r.usd_per_1k_pages_direct) for r in rows]
        loaded = [_zero_if_nan(r.usd_per_1k_pages_fully_loaded) for r in rows]
        # The axis is inverted (first group on top): direct sits above fully loaded in each pair.
        ax.barh([i - 0.2 for i in y], direct, height=0.4, color="#2b7bba", label="direct (GPU+CPU busy)")
        ax.barh([i + 0.2 for i in y], loaded, height=0.4, color="#f08a24", label="fully loaded (cluster)")
        for i, r in enumerate(rows):
            kept = f"  (kept {r.kept_share:.0%} of visual tokens)" if r.visual_tokens else ""
            ax.text(direct[i], i - 0.2, f" ${direct[i]:.3f}", va="center", fontsize=7, color="#2b7bba")
            ax.text(loaded[i], i + 0.2, f" ${loaded[i]:.3f}{kept}", va="center", fontsize=7, color="#555555")
        ax.set_yticks(list(y), [_short(r.group) for r in rows], fontsize=8)
        ax.invert_yaxis()
        shown = "" if len(rows) == len(table.rows) else f" (last {len(rows)} of {len(table.rows)})"
        ax.set_title(f"by {table.dimension}{shown}", fontsize=10, loc="left")
        ax.set_xlabel("USD per 1,000 pages")
        ax.margins(x=0.45)
        ax.grid(axis="x", alpha=0.3)
    # Above the first panel, right of its title: inside the axes it would cover the longest bars.
    axes[0, 0].legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, fontsize=8, frameon=False)
    fig.suptitle("Digitization cost per 1,000 pages", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_trend_chart(trend: CostTable, path: Path) -> None:
    """Two panels over the trend's days: pages per day (ok, failed on top), and $ per 1,000 pages direct and
    fully loaded. A day without pages has no $ per 1,000 pages: the lines break there instead of dropping
    to zero, which would read as free pages."""
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters or in CI
    import matplotlib.pyplot as plt

    days = [r.group for r in trend.rows]
    x = list(range(len(days)))
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 5.6), sharex=True, gridspec_kw={"height_ratios": [1, 1.2]}
    )
    ok = [r.pages_ok for r in trend.rows]
    top.bar(x, ok, color="#7a9cbf", label="pages ok")
    top.bar(x, [r.pages_failed for r in trend.rows], bottom=ok, color="#d9534f", label="pages failed")
    top.set_ylabel("pages")
    top.set_title(f"pages per day, {days[0]} to {days[-1]} (UTC)", fontsize=10, loc="left")
    top.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, fontsize=8, frameon=False)
    for series, color, label in (
        ([r.usd_per_1k_pages_direct for r in trend.rows], "#2b7bba", "direct (GPU+CPU busy)"),
        ([r.usd_per_1k_pages_fully_loaded for r in trend.rows], "#f08a24", "fully loaded (cluster)"),
    ):
        bottom.plot(x, series, marker="o", markersize=4, color=color, label=label)
        shown = [(i, v) for i, v in zip(x, series, strict=True) if not math.isnan(v)]
        if len(shown) > 1:  # a thin dotted line across days without pages keeps the trend readable
            bottom.plot(*zip(*shown, strict=True), linestyle=":", linewidth=1, color=color)
    bottom.set_ylabel("USD per 1,000 pages")
    bottom.set_ylim(bottom=0)
    bottom.set_title("$ per 1,000 pages (no marker: no pages that day)", fontsize=10, loc="left")
    bottom.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, fontsize=8, frameon=False)
    step = max(1, math.ceil(len(days) / 15))  # at most ~15 date labels stay readable
    bottom.set_xticks(
        x[::step], [d[5:] if len(days) > 7 else d for d in days[::step]], fontsize=8, rotation=45
    )
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Digitization trend", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _zero_if_nan(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def _short(label: str, width: int = 38) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1) :]


def trend_title(trend: CostTable) -> str:
    return f"Trend: last {len(trend.rows)} days to {trend.rows[-1].group} (UTC)"


def write_markdown(tables: list[CostTable], path: Path, note: str, trend: CostTable | None = None) -> None:
    parts = ["# Digitization cost report", "", note, "", f"![cost per 1,000 pages]({CHART_NAME})", ""]
    for t in tables:
        parts += [f"## By {t.dimension}", "", format_markdown(t), ""]
    if trend is not None:
        parts += [
            f"## {trend_title(trend)}",
            "",
            f"![pages and cost per 1,000 pages per day]({TREND_CHART_NAME})",
            "",
            format_markdown(trend),
            "",
            "A day is the UTC day a run started; a day without runs shows zeros (its $ per 1,000 pages is "
            "n/a).",
            "",
        ]
    parts += [
        "Direct: GPU and CPU busy seconds of the pages x per-second rates. Fully loaded: every node's seconds",
        "during the run x its hourly rate (idle, ramp-up, model load and head node included). Per 1,000 pages",
        "counts pages that came out as text. Kept: share of visual tokens the language model saw after pruning.",
        "Util: direct / fully loaded. Retried: pages OCR'd more than once (every attempt is in their cost);",
        "recovered: text from a retry; text layer: pages that fell back to the PDF's own text. Re-read: pages",
        "adaptive pruning read again unpruned because the model was unsure of the pruned reading",
        "(docs/quality.md); $ re-read: what those second readings cost (inside $ direct).",
        "Tables, formulas, figures: blocks of those kinds in the pages' layouts (docs/structured_pages.md).",
        "",
    ]
    if any(t.total.pages_routed for t in tables):
        parts += [ROUTING_NOTE, ""]
    path.write_text("\n".join(parts))


def report(config: CostReportConfig, pages: pa.Table, summaries: list[RunSummary]) -> list[CostTable]:
    """Build, print and write the report for already-read pages and summaries."""
    from pipeline.cost.pricing import load_pricing

    pricing = load_pricing(config.pricing) if config.pricing else None
    tables = build_tables(pages, summaries, parse_dimensions(config.by), pricing)
    note = pricing_note(pages, summaries, pricing)
    unsummarised = runs_without_summary(pages, summaries)
    if unsummarised:
        note += (
            f" Runs without a summary (stopped before finishing): {', '.join(unsummarised)}; their pages and"
            " direct cost count, their cluster time is unknown and left out of the fully loaded figures."
        )
    trend = None
    if config.days:
        until = config.until or datetime.now(UTC).date()
        trend = build_trend(pages, summaries, config.days, until, pricing)
    print(note)
    for t in tables:
        print(f"\nby {t.dimension}\n{format_text(t)}")
    if any(t.total.pages_routed for t in tables):
        print("\n" + ROUTING_NOTE)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    render_chart(tables, config.out_dir / CHART_NAME)
    written = [config.out_dir / MARKDOWN_NAME, config.out_dir / CHART_NAME]
    if trend is not None:
        print(f"\n{trend_title(trend).lower()}\n{format_text(trend)}")
        render_trend_chart(trend, config.out_dir / TREND_CHART_NAME)
        written.append(config.out_dir / TREND_CHART_NAME)
    write_markdown(tables, config.out_dir / MARKDOWN_NAME, note, trend)
    print(f"\nwrote {', '.join(map(str, written))}")
    return tables


@job_main("cost_report")
def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    # The readers pull in fsspec/s3fs: import them only when a report is actually run.
    from pipeline.redact import describe_error
    from pipeline.store.output import Output
    from pipeline.store.presence import require_digitize_output
    from pipeline.store.read import read_committed, read_summaries

    try:
        require_digitize_output(Output.open(config.output, config.storage_options), config.output)
    except Exception as exc:  # no run wrote there, or the store refused: one redacted line
        print(f"cost_report: {describe_error(exc)}", file=sys.stderr)
        return 2

    # Every committed row, superseded versions included: a document re-done after it changed was paid
    # for twice, and the runs that did it really cost that.
    pages = read_committed(config.output, storage_options=config.storage_options or None, latest_only=False)
    summaries = read_summaries(config.output, storage_options=config.storage_options or None)
    try:
        report(config, pages, summaries)
    except ReportError as e:
        print(f"cost report: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
