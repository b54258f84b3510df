"""What did digitization cost? Reads committed output across runs and reports it.

    python -m jobs.cost_report --output s3://bucket/ocr [--pricing my_prices.yaml] [--by run,day,model,prune]
                               [--out-dir report/] [--storage-options '{"client_kwargs": {...}}']

Prints one table per grouping and writes report/cost_report.png and report/cost_report.md. With --pricing
the stored usage (GPU/CPU seconds per page, node-seconds per run) is repriced; no OCR is re-run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from pipeline.report import (
    CostTable,
    ReportError,
    build_tables,
    format_markdown,
    format_text,
    parse_dimensions,
    runs_without_summary,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from pipeline.pricing import Pricing
    from pipeline.summary import RunSummary

CHART_NAME = "cost_report.png"
MARKDOWN_NAME = "cost_report.md"
# More bars than this make labels unreadable; the chart shows the last groups (newest runs/days sort last).
MAX_CHART_GROUPS = 25


class CostReportConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    output: str  # the digitize job's output URI (any fsspec URI)
    storage_options: dict = Field(default_factory=dict)  # fsspec options, e.g. an S3 endpoint
    pricing: Path | None = None  # None: costs as stored at run time
    by: str = ",".join(("run", "day", "model", "prune"))  # one table per item; '+' combines keys
    out_dir: Path = Path("report")


def parse_args(argv: list[str] | None = None) -> CostReportConfig:
    p = argparse.ArgumentParser(prog="python -m jobs.cost_report", description=__doc__.splitlines()[0])
    p.add_argument("--output", required=True, help="output URI the digitize job wrote to")
    p.add_argument("--pricing", type=Path, help="reprice stored usage with this pricing YAML")
    p.add_argument("--by", default=CostReportConfig.model_fields["by"].default,
                   help="groupings, comma-separated; '+' combines (e.g. run,day+model)")
    p.add_argument("--out-dir", type=Path, default=Path("report"), help="where the PNG and Markdown go")
    p.add_argument("--storage-options", default="{}", help="fsspec storage options as JSON")
    a = p.parse_args(argv)
    return CostReportConfig(output=a.output, pricing=a.pricing, by=a.by, out_dir=a.out_dir,
                            storage_options=json.loads(a.storage_options))


def pricing_note(pages: pa.Table, summaries: list[RunSummary], pricing: Pricing | None) -> str:
    if pricing is not None:
        return f"Repriced with pricing table `{pricing.name}` from stored usage."
    names = sorted(set(pages.column("pricing_name").unique().to_pylist()) | {s.pricing_name for s in summaries})
    return f"Costs as stored at run time (pricing: {', '.join(f'`{n}`' for n in names) or 'none'})."


def render_chart(tables: list[CostTable], path: Path) -> None:
    """One panel per grouping: $ per 1,000 pages, direct next to fully loaded (the gap is idle cluster)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters or in CI
    import matplotlib.pyplot as plt

    heights = [max(1.6, 0.42 * min(len(t.rows), MAX_CHART_GROUPS) + 1.2) for t in tables]
    fig, axes = plt.subplots(len(tables), 1, figsize=(9, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
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


def _zero_if_nan(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def _short(label: str, width: int = 38) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1):]


def write_markdown(tables: list[CostTable], path: Path, note: str) -> None:
    parts = ["# Digitization cost report", "", note, "", f"![cost per 1,000 pages]({CHART_NAME})", ""]
    for t in tables:
        parts += [f"## By {t.dimension}", "", format_markdown(t), ""]
    parts += [
        "Direct: GPU and CPU busy seconds of the pages x per-second rates. Fully loaded: every node's seconds",
        "during the run x its hourly rate (idle, ramp-up, model load and head node included). Per 1,000 pages",
        "counts pages that came out as text. Kept: share of visual tokens the language model saw after pruning.",
        "Util: direct / fully loaded. Retried: pages OCR'd more than once (every attempt is in their cost);",
        "recovered: text from a retry; text layer: pages that fell back to the PDF's own text.",
        "",
    ]
    path.write_text("\n".join(parts))


def report(config: CostReportConfig, pages: pa.Table, summaries: list[RunSummary]) -> list[CostTable]:
    """Build, print and write the report for already-read pages and summaries."""
    from pipeline.pricing import load_pricing

    pricing = load_pricing(config.pricing) if config.pricing else None
    tables = build_tables(pages, summaries, parse_dimensions(config.by), pricing)
    note = pricing_note(pages, summaries, pricing)
    unsummarised = runs_without_summary(pages, summaries)
    if unsummarised:
        note += (f" Runs without a summary (stopped before finishing): {', '.join(unsummarised)}; their pages and"
                 " direct cost count, their cluster time is unknown and left out of the fully loaded figures.")
    print(note)
    for t in tables:
        print(f"\nby {t.dimension}\n{format_text(t)}")
    config.out_dir.mkdir(parents=True, exist_ok=True)
    render_chart(tables, config.out_dir / CHART_NAME)
    write_markdown(tables, config.out_dir / MARKDOWN_NAME, note)
    print(f"\nwrote {config.out_dir / MARKDOWN_NAME} and {config.out_dir / CHART_NAME}")
    return tables


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    # The readers pull in fsspec/s3fs: import them only when a report is actually run.
    from pipeline.output import read_committed, read_summaries

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
