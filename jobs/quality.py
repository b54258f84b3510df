"""Which pages can be trusted? Reads committed output across runs and reports their quality signals.

    python -m jobs.quality --output s3://bucket/ocr [--out-dir report/] [--worst 20]
                           [--storage-options '{"client_kwargs": {...}}']

Prints, per run and pruning setting, the decoder's confidence (quantiles of the pages' mean token
log-probability), suspect pages by reason, languages and adaptive pruning's re-reads, then the pages to
look at first (lowest confidence); writes report/quality_report.md and report/quality_report.png.
docs/quality.md says what each signal means and how to set the thresholds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pipeline.cost.quality_report import (
    QUANTILES,
    REASONS,
    QualityGroup,
    QualityReport,
    build_quality_report,
    format_markdown,
    format_text,
    group_cells,
    worst_cells,
)

CHART_NAME = "quality_report.png"
MARKDOWN_NAME = "quality_report.md"
# More groups than this make the chart unreadable; it shows the last ones (newest runs sort last).
MAX_CHART_GROUPS = 25
_REASON_COLORS = ("#d9534f", "#f0ad4e", "#9e9e9e", "#8e44ad", "#e67e22", "#5bc0de", "#2b7bba")


class QualityReportConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    output: str  # the digitize job's output URI (any fsspec URI)
    storage_options: dict = Field(default_factory=dict)  # fsspec options, e.g. an S3 endpoint
    out_dir: Path = Path("report")
    # Pages listed to look at first: more is a longer review queue in the report.
    worst: int = Field(default=20, ge=0)
    top_languages: int = Field(default=5, ge=1)  # languages named per run and setting


def parse_args(argv: list[str] | None = None) -> QualityReportConfig:
    p = argparse.ArgumentParser(prog="python -m jobs.quality", description=__doc__.splitlines()[0])
    p.add_argument("--output", required=True, help="output URI the digitize job wrote to")
    p.add_argument("--out-dir", type=Path, default=Path("report"), help="where the PNG and Markdown go")
    p.add_argument("--worst", type=int, default=20, help="pages to list, lowest confidence first")
    p.add_argument("--storage-options", default="{}", help="fsspec storage options as JSON")
    a = p.parse_args(argv)
    return QualityReportConfig(
        output=a.output, out_dir=a.out_dir, worst=a.worst, storage_options=json.loads(a.storage_options)
    )


def _box(g: QualityGroup) -> dict:
    p5, p25, p50, p75, p95 = g.quantiles
    return {"whislo": p5, "q1": p25, "med": p50, "q3": p75, "whishi": p95, "fliers": [], "label": g.label}


def render_chart(report: QualityReport, path: Path) -> None:
    """Two panels per run and setting: the spread of the pages' mean token log-probability (box p25-p75,
    whiskers p5-p95, line the median), and the share of pages raising each suspect reason."""
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters or in CI
    import matplotlib.pyplot as plt

    groups = report.groups[-MAX_CHART_GROUPS:]
    height = max(2.4, 0.45 * len(groups) + 1.8)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, height), sharey=True)
    y = list(range(len(groups)))
    scored = [(i, g) for i, g in enumerate(groups) if not math.isnan(g.quantiles[0])]
    if scored:
        left.bxp(
            [_box(g) for _, g in scored],
            positions=[i for i, _ in scored],
            orientation="horizontal",
            widths=0.6,
        )
    left.set_yticks(y, [_short(g.label) for g in groups], fontsize=8)
    left.set_xlabel(f"mean token log-probability per page (p{round(100 * QUANTILES[0])}-p95)")
    left.set_title("decoder confidence (higher is surer)", fontsize=10, loc="left")
    left.grid(axis="x", alpha=0.3)
    start = [0.0] * len(groups)
    for reason, color in zip(REASONS, _REASON_COLORS, strict=True):
        share = [100 * g.reasons[reason] / g.pages if g.pages else 0.0 for g in groups]
        right.barh(y, share, left=start, color=color, label=reason, height=0.6)
        start = [a + b for a, b in zip(start, share, strict=True)]
    right.set_xlabel("% of pages raising the reason (a page may raise several)")
    right.set_title("suspect pages by reason", fontsize=10, loc="left")
    right.grid(axis="x", alpha=0.3)
    left.invert_yaxis()
    # Under both panels: above the right one it would cover its title.
    fig.legend(*right.get_legend_handles_labels(), loc="lower center", ncols=7, fontsize=7, frameon=False)
    fig.suptitle("Page quality per run and pruning setting", fontsize=12)
    fig.tight_layout(rect=(0, 0.3 / height, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _short(label: str, width: int = 42) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1) :]


def write_markdown(report: QualityReport, path: Path) -> None:
    parts = ["# Page quality report", "", f"![confidence and suspect reasons]({CHART_NAME})", ""]
    parts += ["## Per run and setting", "", format_markdown(*group_cells(report)), ""]
    parts += ["## Pages to look at first (lowest confidence)", "", format_markdown(*worst_cells(report)), ""]
    parts += [
        "Pages: pages that came out as text; scored: of those, the ones the decoder's confidence covers",
        "(not text-layer pages). pN: the N-th percentile of the pages' mean token log-probability (natural",
        "log; 0 is certain). Suspect: pages some check speaks against, by reason (a page may raise several).",
        "Languages: '?' is unknown. Re-read: pages adaptive pruning read again unpruned. docs/quality.md",
        "explains each signal and its threshold.",
        "",
    ]
    path.write_text("\n".join(parts))


def report(config: QualityReportConfig, pages) -> QualityReport:  # pages: pa.Table
    """Build, print and write the report for already-read pages."""
    built = build_quality_report(pages, worst=config.worst, top_languages=config.top_languages)
    print(f"per run and setting\n{format_text(*group_cells(built))}")
    print(f"\npages to look at first\n{format_text(*worst_cells(built))}")
    config.out_dir.mkdir(parents=True, exist_ok=True)
    render_chart(built, config.out_dir / CHART_NAME)
    write_markdown(built, config.out_dir / MARKDOWN_NAME)
    print(f"\nwrote {config.out_dir / MARKDOWN_NAME}, {config.out_dir / CHART_NAME}")
    return built


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    # The readers pull in fsspec/s3fs: import them only when a report is actually run.
    from pipeline.store.read import read_committed

    # Every committed row of every run: each run's pages as that run left them.
    pages = read_committed(config.output, storage_options=config.storage_options or None, latest_only=False)
    report(config, pages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
