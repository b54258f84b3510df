"""The cost report's daily trend: pages and $ per 1,000 pages per UTC day over the last N days, from runs
on different days (the dates are in the data), checked against values computed by hand."""

from __future__ import annotations

import math
import struct
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from jobs.cost_report import MARKDOWN_NAME, TREND_CHART_NAME, main
from pipeline.cost.report import ReportError, build_trend
from pipeline.stages.rows import RunStamp, mark_error, new_row, to_table
from pipeline.store.output import Output, commit_part, write_summary
from pipeline.summary import RunSummary
from rtprune.engines.contract import EngineIdentity

# (run_id, started_at, ok pages, failed pages, $ per ok page, fully loaded $). A failed page costs $0.001.
RUNS = [
    ("r0", "2025-10-30T02:00:00Z", 10, 0, 0.005, 0.10),  # before the 7-day window
    ("r1", "2025-11-03T01:00:00Z", 40, 0, 0.002, 0.40),
    ("r2", "2025-11-04T01:30:00+02:00", 10, 2, 0.003, 0.16),  # 2025-11-03 23:30 UTC: counts on the 3rd
    ("r3", "2025-11-05T23:50:00Z", 20, 0, 0.001, 0.30),
    ("r4", "2025-11-06T00:00:00Z", 0, 0, 0.0, 0.05),  # nothing new that night: cluster time only
]
UNTIL = date(2025, 11, 7)


def _rows(run_id: str, ok: int, failed: int, usd_per_page: float) -> list[dict]:
    stamp = RunStamp(run_id, EngineIdentity("deepseek-ai/DeepSeek-OCR", "large", "rtprune", "h"))
    rows = []
    for i in range(ok + failed):
        doc = {"doc_id": f"{run_id}-{i}", "source_uri": f"file:///in/{run_id}-{i}.pdf", "content_hash": "c"}
        row = new_row(stamp, doc, 0, 1) | {"pricing_name": "test"}
        row = (
            row | {"text": "t", "cost_direct_usd": usd_per_page}
            if i < ok
            else mark_error(row, "render", "timeout") | {"cost_direct_usd": 0.001}
        )
        rows.append(row)
    return rows


def _summary(run_id: str, started_at: str, ok: int, failed: int, direct: float, loaded: float) -> RunSummary:
    return RunSummary(
        run_id=run_id,
        started_at=started_at,
        finished_at=started_at,
        wall_s=60.0,
        documents=ok + failed,
        pages_ok=ok,
        pages_failed=failed,
        visual_tokens=0,
        visual_tokens_kept=0,
        gpu_s=0.0,
        cpu_s=0.0,
        model_id="deepseek-ai/DeepSeek-OCR",
        model_mode="large",
        prune_method="rtprune",
        prune_config_hash="h",
        pricing_name="test",
        cost_direct_usd=direct,
        node_seconds={"g6.xlarge": 60.0},
        cost_fully_loaded_usd=loaded,
        usd_per_1k_pages_direct=0.0,
        usd_per_1k_pages_fully_loaded=0.0,
        utilisation=0.0,
    )


@pytest.fixture
def runs() -> tuple[pa.Table, list[RunSummary]]:
    rows, summaries = [], []
    for run_id, started_at, ok, failed, usd, loaded in RUNS:
        run_rows = _rows(run_id, ok, failed, usd)
        rows += run_rows
        summaries.append(
            _summary(run_id, started_at, ok, failed, sum(r["cost_direct_usd"] for r in run_rows), loaded)
        )
    return to_table(rows), summaries


def test_per_day_pages_and_cost_per_1k_pages_match_hand_computed_values(runs):
    trend = build_trend(*runs, days=7, until=UNTIL)
    by_day = {r.group: r for r in trend.rows}
    assert list(by_day) == [f"2025-11-0{d}" for d in range(1, 8)]  # every day, oldest first
    d3 = by_day["2025-11-03"]  # r1 + r2: (40 x 0.002 + 10 x 0.003 + 2 x 0.001) / 50 ok pages
    assert (d3.runs, d3.pages_ok, d3.pages_failed) == (2, 50, 2)
    assert d3.usd_per_1k_pages_direct == pytest.approx(2.24)
    assert d3.usd_per_1k_pages_fully_loaded == pytest.approx(11.2)  # (0.40 + 0.16) / 50 x 1000
    d5 = by_day["2025-11-05"]
    assert (d5.pages_ok, d5.usd_per_1k_pages_direct, d5.usd_per_1k_pages_fully_loaded) == (
        20,
        pytest.approx(1.0),
        pytest.approx(15.0),
    )
    d6 = by_day["2025-11-06"]  # an idle run: its cluster time costs, per page there is nothing
    assert (d6.runs, d6.pages_ok, d6.cost_fully_loaded_usd) == (1, 0, pytest.approx(0.05))
    assert math.isnan(d6.usd_per_1k_pages_direct)
    assert (trend.total.pages_ok, trend.total.pages_failed, trend.total.runs) == (70, 2, 4)
    assert trend.total.usd_per_1k_pages_direct == pytest.approx(0.132 / 70 * 1000)
    assert trend.total.usd_per_1k_pages_fully_loaded == pytest.approx(13.0)  # 0.91 / 70 x 1000


def test_days_without_runs_are_rows_of_zeros(runs):
    by_day = {r.group: r for r in build_trend(*runs, days=7, until=UNTIL).rows}
    for day in ("2025-11-01", "2025-11-02", "2025-11-04", "2025-11-07"):
        row = by_day[day]
        assert (row.runs, row.pages_ok, row.pages_failed, row.cost_direct_usd, row.cost_fully_loaded_usd) == (
            0,
            0,
            0,
            0.0,
            0.0,
        )
        assert math.isnan(row.usd_per_1k_pages_direct) and math.isnan(row.usd_per_1k_pages_fully_loaded)


def test_days_limits_the_window(runs):
    last3 = build_trend(*runs, days=3, until=UNTIL)
    assert [r.group for r in last3.rows] == ["2025-11-05", "2025-11-06", "2025-11-07"]
    assert (last3.total.runs, last3.total.pages_ok) == (2, 20)
    assert last3.total.cost_fully_loaded_usd == pytest.approx(0.35)
    long = build_trend(*runs, days=10, until=UNTIL)
    assert long.rows[0].group == "2025-10-29" and long.total.pages_ok == 80  # r0 is inside now
    empty = build_trend(*runs, days=2, until=date(2025, 11, 2))
    assert empty.total.pages_ok == 0 and all(r.runs == 0 for r in empty.rows)
    with pytest.raises(ReportError, match="at least one day"):
        build_trend(*runs, days=0, until=UNTIL)


def _committed(tmp_path) -> str:
    """The runs above written as the digitize job writes them: parts + ledger records, summaries."""
    out = Output.open(str(tmp_path / "out"))
    for run_id, started_at, ok, failed, usd, loaded in RUNS:
        rows = _rows(run_id, ok, failed, usd)
        if rows:
            docs = [
                {
                    "doc_id": r["doc_id"],
                    "content_hash": "c",
                    "source_uri": r["source_uri"],
                    "ok": r["status"] == "ok",
                }
                for r in rows
            ]
            commit_part(out, run_id, 0, to_table(rows), docs, "e1")
        write_summary(
            out, _summary(run_id, started_at, ok, failed, sum(r["cost_direct_usd"] for r in rows), loaded)
        )
    return str(tmp_path / "out")


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_cli_writes_the_trend_chart_and_tables(tmp_path, capsys):
    output = _committed(tmp_path)
    report_dir = tmp_path / "report"
    assert (
        main(
            [
                "--output",
                output,
                "--by",
                "run",
                "--days",
                "7",
                "--until",
                "2025-11-07",
                "--out-dir",
                str(report_dir),
            ]
        )
        == 0
    )
    width, height = _png_size(report_dir / TREND_CHART_NAME)
    assert width >= 800 and height >= 500 and (report_dir / TREND_CHART_NAME).stat().st_size > 20_000
    md = (report_dir / MARKDOWN_NAME).read_text()
    assert "## Trend: last 7 days to 2025-11-07 (UTC)" in md and f"]({TREND_CHART_NAME})" in md
    assert "| 2025-11-03 | 2 | 50 | 2 | 0 | 0 | 0 | 2.2400 | 11.2000 |" in md
    assert "| 2025-11-04 | 0 | 0 | 0 | 0 | 0 | 0 | n/a | n/a |" in md
    assert "| **total** | **4** | **70** | **2** | **0** | **0** | **0** | **1.8857** | **13.0000** |" in md
    assert "| 2025-10-30 |" not in md.split("## Trend")[1]
    out = capsys.readouterr().out
    assert "trend: last 7 days to 2025-11-07 (utc)" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("2025-11-0")] == [
        f"2025-11-0{d}" for d in range(1, 8)
    ]


def test_no_trend_with_zero_days_and_today_by_default(tmp_path, capsys):
    output = _committed(tmp_path)
    assert main(["--output", output, "--days", "0", "--out-dir", str(tmp_path / "a")]) == 0
    assert not (tmp_path / "a" / TREND_CHART_NAME).exists()
    assert "## Trend" not in (tmp_path / "a" / MARKDOWN_NAME).read_text()
    today = datetime.now(UTC).date()
    write_summary(Output.open(output), _summary("today", datetime.now(UTC).isoformat(), 0, 0, 0.0, 0.25))
    assert main(["--output", output, "--days", "3", "--out-dir", str(tmp_path / "b")]) == 0
    md = (tmp_path / "b" / MARKDOWN_NAME).read_text()
    assert f"## Trend: last 3 days to {today.isoformat()} (UTC)" in md
    assert f"| {today.isoformat()} | 1 | 0 | 0 | 0 | 0 | 0 | n/a | n/a |" in md
