"""Quality report: which pages to trust, per run and pruning setting, from committed output.

Pure logic over a pages table (PAGES_SCHEMA); the job in jobs/quality.py reads committed output and writes
the files. Per run and setting: how confident the decoder was (quantiles of the pages' mean token
log-probability), how many pages are suspect and why, which languages the pages are in, and how many pages
adaptive pruning read again; across them, the pages to look at first (lowest confidence). Only pages that
came out as text count (error rows have none); confidence quantiles only over pages the decoder scored.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.cost.report import model_label, prune_label
from pipeline.stages.quality import REASONS

# Quantiles of the mean log-probability per group: the whiskers and box of the chart, and the table.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_KEYS = ["run_id", "model_id", "model_mode", "prune_method", "prune_config_hash"]
EXCERPT_CHARS = 80


@dataclass(frozen=True)
class QualityGroup:
    """One run's pages of one model and pruning setting."""

    run_id: str
    model: str
    prune: str
    pages: int  # ok pages
    scored: int  # of those, with a confidence (the decoder's, not a text layer's)
    quantiles: tuple[float, ...]  # mean_logprob at QUANTILES over the scored pages; nan without any
    suspect: int
    reasons: dict[str, int]  # suspect pages per reason, every REASONS entry present
    languages: list[tuple[str, int]]  # most frequent first; "" is "unknown"
    adaptive: int  # pages adaptive pruning read again unpruned

    @property
    def label(self) -> str:
        return f"{self.run_id} / {self.prune}"


@dataclass(frozen=True)
class WorstPage:
    """A page to look at first: its place, confidence, suspect reasons and the start of its text."""

    run_id: str
    prune: str
    source_uri: str
    page_index: int
    mean_logprob: float
    min_logprob: float
    low_probability_share: float
    suspect_reasons: str
    language: str
    excerpt: str


@dataclass(frozen=True)
class QualityReport:
    groups: list[QualityGroup]
    worst: list[WorstPage] = field(default_factory=list)


def _ok_pages(pages: pa.Table) -> pa.Table:
    return pages.filter(pc.equal(pages["status"], "ok")) if pages.num_rows else pages


def _reason_column(reasons: pa.ChunkedArray, reason: str) -> pa.ChunkedArray:
    """1 where the comma-separated reasons name `reason` (as a whole item), else 0."""
    return pc.cast(pc.match_substring_regex(reasons, f"(^|,){reason}(,|$)"), pa.int64())


def _counts(ok: pa.Table) -> dict[tuple, dict[str, int]]:
    """Per group key: ok pages, scored, suspect, adaptive and each reason, summed in one Arrow group_by."""
    table = ok.select(_KEYS)
    columns = {
        "scored": pc.cast(pc.greater(ok["scored_tokens"], 0), pa.int64()),
        "suspect": pc.cast(ok["suspect"], pa.int64()),
        "adaptive": pc.cast(pc.not_equal(ok["adaptive_rerun"], ""), pa.int64()),
        **{f"r:{reason}": _reason_column(ok["suspect_reasons"], reason) for reason in REASONS},
    }
    for name, values in columns.items():
        table = table.append_column(name, values)
    grouped = table.group_by(_KEYS).aggregate([("scored", "count"), *((n, "sum") for n in columns)])
    return {
        tuple(r[k] for k in _KEYS): {"pages": r["scored_count"], **{n: r[f"{n}_sum"] for n in columns}}
        for r in grouped.to_pylist()
    }


def _quantiles(ok: pa.Table) -> dict[tuple, tuple[float, ...]]:
    """Per group key: mean_logprob at QUANTILES over its scored pages (linear interpolation, exact)."""
    scored = ok.filter(pc.greater(ok["scored_tokens"], 0)).select([*_KEYS, "mean_logprob"])
    if not scored.num_rows:
        return {}
    scored = scored.sort_by([(k, "ascending") for k in _KEYS])
    sizes = scored.group_by(_KEYS, use_threads=False).aggregate([("mean_logprob", "count")])
    out, offset = {}, 0
    for r in sizes.sort_by([(k, "ascending") for k in _KEYS]).to_pylist():
        n = r["mean_logprob_count"]
        values = scored["mean_logprob"].slice(offset, n)
        out[tuple(r[k] for k in _KEYS)] = tuple(pc.quantile(values, q=list(QUANTILES)).to_pylist())
        offset += n
    return out


def _languages(ok: pa.Table, top: int) -> dict[tuple, list[tuple[str, int]]]:
    grouped = (
        ok.select([*_KEYS, "language"]).group_by([*_KEYS, "language"]).aggregate([("language", "count")])
    )
    per_group: dict[tuple, Counter[str]] = defaultdict(Counter)
    for r in grouped.to_pylist():
        per_group[tuple(r[k] for k in _KEYS)][r["language"]] = r["language_count"]
    return {key: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:top] for key, c in per_group.items()}


def worst_pages(ok: pa.Table, n: int) -> list[WorstPage]:
    """The `n` scored pages with the lowest mean log-probability, lowest first."""
    scored = ok.filter(pc.greater(ok["scored_tokens"], 0)) if ok.num_rows else ok
    if not scored.num_rows or n <= 0:
        return []
    picked = scored.take(pc.sort_indices(scored, sort_keys=[("mean_logprob", "ascending")])[:n])
    return [
        WorstPage(
            run_id=r["run_id"],
            prune=prune_label(r["prune_method"], r["prune_config_hash"]),
            source_uri=r["source_uri"],
            page_index=r["page_index"],
            mean_logprob=r["mean_logprob"],
            min_logprob=r["min_logprob"],
            low_probability_share=r["low_probability_share"],
            suspect_reasons=r["suspect_reasons"],
            language=r["language"],
            excerpt=" ".join(r["text"].split())[:EXCERPT_CHARS],
        )
        for r in picked.to_pylist()
    ]


def build_quality_report(pages: pa.Table, worst: int = 20, top_languages: int = 5) -> QualityReport:
    """The report over every committed page row in `pages`; groups sorted by run, then setting."""
    ok = _ok_pages(pages)
    if not ok.num_rows:
        return QualityReport([], [])
    counts, quantiles, languages = _counts(ok), _quantiles(ok), _languages(ok, top_languages)
    nan = tuple(math.nan for _ in QUANTILES)
    groups = [
        QualityGroup(
            run_id=key[0],
            model=model_label(key[1], key[2]),
            prune=prune_label(key[3], key[4]),
            pages=c["pages"],
            scored=c["scored"],
            quantiles=quantiles.get(key, nan),
            suspect=c["suspect"],
            reasons={reason: c[f"r:{reason}"] for reason in REASONS},
            languages=languages.get(key, []),
            adaptive=c["adaptive"],
        )
        for key, c in sorted(counts.items())
    ]
    return QualityReport(groups, worst_pages(ok, worst))


def _q(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def group_cells(report: QualityReport) -> tuple[list[str], list[list[str]]]:
    """The per-group table: pages, confidence quantiles, suspect share, the reasons raised (those with a
    page), languages, re-reads."""
    header = ["run / setting", "pages", "scored"] + [f"p{round(100 * q)}" for q in QUANTILES]
    header += ["suspect", "by reason", "languages", "re-read"]
    body = []
    for g in report.groups:
        reasons = ", ".join(f"{r} {g.reasons[r]:,}" for r in REASONS if g.reasons[r]) or "-"
        languages = ", ".join(f"{code or '?'} {n:,}" for code, n in g.languages)
        body.append(
            [g.label, f"{g.pages:,}", f"{g.scored:,}", *(_q(v) for v in g.quantiles)]
            + [f"{g.suspect:,} ({_pct(g.suspect, g.pages)})", reasons, languages, f"{g.adaptive:,}"]
        )
    return header, body


def worst_cells(report: QualityReport) -> tuple[list[str], list[list[str]]]:
    header = ["mean", "min", "low share", "page", "run / setting", "reasons", "lang", "text"]
    body = [
        [
            f"{w.mean_logprob:.3f}",
            f"{w.min_logprob:.2f}",
            f"{100 * w.low_probability_share:.0f}%",
            f"{w.source_uri} p{w.page_index}",
            f"{w.run_id} / {w.prune}",
            w.suspect_reasons or "-",
            w.language or "?",
            w.excerpt,
        ]
        for w in report.worst
    ]
    return header, body


def format_text(header: list[str], body: list[list[str]]) -> str:
    """Fixed-width columns for a terminal."""
    if not body:
        return "(no pages)"
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *body]
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def format_markdown(header: list[str], body: list[list[str]]) -> str:
    rows = [header, ["---"] * len(header), *body]
    return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows)
