"""The cost report's tables as text: fixed-width for a terminal, Markdown for the report file. Dollars per
1,000 pages lead; routing's columns (pages routed, the estimated cost without routing and GPU hours
avoided) appear only in a table where some page was routed."""

from __future__ import annotations

import math
from collections.abc import Callable

from pipeline.cost.report import CostRow, CostTable

# (header, how to format a row). Dollars per 1,000 pages are the headline numbers; totals follow.
_COLUMNS: list[tuple[str, Callable[[CostRow], str]]] = [
    ("runs", lambda r: f"{r.runs}"),
    ("pages ok", lambda r: f"{r.pages_ok:,}"),
    ("failed", lambda r: f"{r.pages_failed:,}"),
    ("retried", lambda r: f"{r.pages_retried:,}"),
    ("recovered", lambda r: f"{r.pages_recovered:,}"),
    ("text layer", lambda r: f"{r.pages_text_layer:,}"),
    ("$/1k direct", lambda r: _money(r.usd_per_1k_pages_direct)),
    ("$/1k loaded", lambda r: _money(r.usd_per_1k_pages_fully_loaded)),
    ("GPU-h", lambda r: f"{r.gpu_hours:.3f}"),
    ("kept", lambda r: _pct(r.kept_share)),
    ("util", lambda r: _pct(r.utilisation)),
    ("$ direct", lambda r: _money(r.cost_direct_usd)),
    ("$ loaded", lambda r: _money(r.cost_fully_loaded_usd)),
    ("tables", lambda r: f"{r.tables:,}"),
    ("formulas", lambda r: f"{r.formulas:,}"),
    ("figures", lambda r: f"{r.figures:,}"),
    ("re-read", lambda r: f"{r.pages_adaptive:,}"),
    ("$ re-read", lambda r: _money(r.adaptive_cost_usd)),
]


def _money(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:,.4f}"


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


# Shown after the column named first when some page of the table was routed (estimates marked "~").
_ROUTING_COLUMNS: list[tuple[str, str, Callable[[CostRow], str]]] = [
    ("text layer", "routed", lambda r: f"{r.pages_routed:,}"),
    ("$/1k direct", "~$/1k no routing", lambda r: _money(r.usd_per_1k_pages_direct_without_routing)),
    ("GPU-h", "~GPU-h avoided", lambda r: f"{r.gpu_s_avoided / 3600.0:.3f}"),
]


def _columns(table: CostTable) -> list[tuple[str, Callable[[CostRow], str]]]:
    if not table.total.pages_routed:
        return _COLUMNS
    after = {before: (header, fmt) for before, header, fmt in _ROUTING_COLUMNS}
    columns = []
    for header, fmt in _COLUMNS:
        columns.append((header, fmt))
        if header in after:
            columns.append(after[header])
    return columns


def _cells(table: CostTable) -> tuple[list[str], list[list[str]]]:
    columns = _columns(table)
    header = [table.dimension] + [h for h, _ in columns]
    body = [[r.group] + [f(r) for _, f in columns] for r in [*table.rows, table.total]]
    return header, body


def format_text(table: CostTable) -> str:
    """Fixed-width table for a terminal; the last line is the total."""
    header, body = _cells(table)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *(line(r) for r in body[:-1]), rule, line(body[-1])])


def format_markdown(table: CostTable) -> str:
    header, body = _cells(table)
    body[-1] = [f"**{c}**" for c in body[-1]]
    rows = [header, ["---"] + ["---:"] * (len(header) - 1), *body]
    return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows)
