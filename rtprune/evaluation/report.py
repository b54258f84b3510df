"""Sweep outputs: a CSV table (for tools), a Markdown table with the recommendation (for people), and a
PNG plot of accuracy/agreement against $ per 1,000 pages (to see the trade-off at a glance)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from rtprune.evaluation.sweep import Recommendation, SettingResult

COLUMNS = [f.name for f in fields(SettingResult)]


def write_csv(results: Sequence[SettingResult], path: str | Path) -> Path:
    """One row per setting, columns = SettingResult fields; a missing accuracy is an empty cell."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for r in results:
            writer.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    return path


def read_csv(path: str | Path) -> list[SettingResult]:
    """The inverse of write_csv, so a table can be re-plotted or re-recommended without re-running OCR."""
    rows = []
    with Path(path).open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows.append(
                SettingResult(
                    label=row["label"],
                    method=row["method"],
                    retention=float(row["retention"]),
                    dynamic=row["dynamic"] == "True",
                    pages=int(row["pages"]),
                    accuracy=float(row["accuracy"]) if row["accuracy"] else None,
                    agreement=float(row["agreement"]),
                    kept_share=float(row["kept_share"]),
                    prefill_s_per_page=float(row["prefill_s_per_page"]),
                    gpu_s_per_page=float(row["gpu_s_per_page"]),
                    usd_per_1k_pages=float(row["usd_per_1k_pages"]),
                )
            )
    return rows


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_table(results: Sequence[SettingResult], recommendation: Recommendation | None = None) -> str:
    """Settings sorted by cost, cheapest first, then the recommendation in one sentence."""
    lines = [
        "| setting | accuracy | agreement | tokens kept | prefill s/page | GPU s/page | $ / 1k pages |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(results, key=lambda r: r.usd_per_1k_pages):
        mark = " **(recommended)**" if recommendation and recommendation.setting == r else ""
        lines.append(
            f"| {r.label}{mark} | {_fmt(r.accuracy)} | {_fmt(r.agreement)} | {r.kept_share:.1%} | "
            f"{r.prefill_s_per_page:.4f} | {r.gpu_s_per_page:.4f} | {r.usd_per_1k_pages:.4f} |"
        )
    if recommendation is not None:
        verdict = "Recommended" if recommendation.setting else "No recommendation"
        lines += [
            "",
            f"{verdict} (target {recommendation.metric} >= {recommendation.target:g}): "
            f"{recommendation.reason}.",
        ]
    pages = results[0].pages if results else 0
    lines += ["", f"{pages} pages per setting."]
    return "\n".join(lines) + "\n"


def _by_method(results: Sequence[SettingResult]) -> dict[str, list[SettingResult]]:
    """Settings grouped per method (dynamic RTPrune apart), each sorted by retention, for one line each."""
    groups: dict[str, list[SettingResult]] = {}
    for r in results:
        groups.setdefault(f"{r.method}{'-dynamic' if r.dynamic else ''}", []).append(r)
    return {name: sorted(group, key=lambda r: r.retention) for name, group in groups.items()}


def plot_tradeoff(
    results: Sequence[SettingResult], path: str | Path, recommendation: Recommendation | None = None
) -> Path:
    """Agreement (solid) and accuracy if measured (dashed) against $ per 1k pages: one line per method
    through its retentions, each point labelled with its retention, the recommended point circled."""
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes or CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (name, group) in enumerate(_by_method(results).items()):
        color = f"C{i % 10}"
        cost = [r.usd_per_1k_pages for r in group]
        marker = "*" if name == "none" else "o"
        ax.plot(cost, [r.agreement for r in group], marker=marker, color=color, label=f"{name} agreement")
        with_acc = [r for r in group if r.accuracy is not None]
        if with_acc:
            ax.plot(
                [r.usd_per_1k_pages for r in with_acc],
                [r.accuracy for r in with_acc],
                marker="^",
                linestyle="--",
                color=color,
                alpha=0.6,
                label=f"{name} accuracy",
            )
        for r in group:  # the retention beside each point; the legend names the method
            if r.method != "none":
                ax.annotate(
                    f"{r.retention:g}",
                    (r.usd_per_1k_pages, r.agreement),
                    fontsize=7,
                    color=color,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
    if recommendation is not None:
        _mark_recommendation(ax, recommendation)
    ax.set_xlabel("$ per 1,000 pages (GPU seconds x GPU-second rate)")
    ax.set_ylabel("1 - normalised edit distance")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _mark_recommendation(ax: Any, recommendation: Recommendation) -> None:
    """The target as a dashed line, the recommended setting circled."""
    ax.axhline(
        recommendation.target,
        linestyle="--",
        linewidth=0.8,
        color="grey",
        label=f"target {recommendation.metric} {recommendation.target:g}",
    )
    if recommendation.setting is not None:
        s = recommendation.setting
        ax.scatter(
            [s.usd_per_1k_pages],
            [s.score(recommendation.metric)],
            s=150,
            facecolors="none",
            edgecolors="red",
            label=f"recommended: {s.label}",
        )
