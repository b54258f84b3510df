"""Cost report: totals, repricing, grouping, and the files it writes. Tables are built in code with
PAGES_SCHEMA, priced with the shipped pricing table the way the pipeline prices them."""

from __future__ import annotations

import math
import re
import struct

import pyarrow as pa
import pytest
import yaml

from jobs.cost_report import CHART_NAME, MARKDOWN_NAME, CostReportConfig, parse_args, report
from pipeline.cost.pricing import Pricing, default_pricing_text, load_pricing
from pipeline.cost.report import ReportError, build_tables, parse_dimensions
from pipeline.schema import PAGES_SCHEMA
from pipeline.stages.rows import RunStamp, new_row
from pipeline.summary import RunSummary
from rtprune.engines.contract import EngineIdentity

PRICING = load_pricing()


def _page(run_id: str, i: int, ok: bool, model: str, prune: str, pricing: Pricing) -> dict:
    # Deterministic but uneven usage per page, so sums are not trivially n x constant.
    gpu_s, cpu_s = (0.5 + 0.1 * (i % 7), 0.05 + 0.01 * (i % 3)) if ok else (0.0, 0.02)
    visual = 400 if ok else 0
    stamp = RunStamp(run_id, EngineIdentity(model, "large", prune, f"{prune}-hash"))
    doc = {"doc_id": f"d{i // 4}", "source_uri": f"file:///in/d{i // 4}.pdf", "content_hash": "h"}
    return new_row(stamp, doc, i % 4, 4) | {
        "status": "ok" if ok else "error",
        "error_stage": "" if ok else "render",
        "error": "" if ok else "timeout",
        "text": "x" if ok else "",
        "finish_reason": "eos" if ok else "",
        "text_source": "ocr" if ok else "",
        "ocr_attempts": int(ok),
        "doc_flagged": False,
        "visual_tokens": visual,
        "visual_tokens_kept": int(visual * 0.84),
        "prompt_tokens": 350,
        "output_tokens": 120,
        "render_s": cpu_s,
        "encode_s": gpu_s / 4,
        "prune_s": gpu_s / 4,
        "prefill_s": gpu_s / 4,
        "decode_s": gpu_s / 4,
        "gpu_s": gpu_s,
        "cpu_s": cpu_s,
        "cost_direct_usd": gpu_s * pricing.gpu_usd_per_s + cpu_s * pricing.cpu_usd_per_s,
        "pricing_name": pricing.name,
        "gpu_node_type": pricing.gpu_node_type,
        "gpu_usd_per_s": pricing.gpu_usd_per_s,
        "cpu_usd_per_s": pricing.cpu_usd_per_s,
        "route": "ocr" if ok else "",
        "route_reason": "ocr_mode" if ok else "",
        "route_s": 0.0,
    }


def _run(
    run_id: str,
    started_at: str,
    n_ok: int,
    n_failed: int,
    model: str = "deepseek-ai/DeepSeek-OCR",
    prune: str = "rtprune",
    gpu_nodes: int = 1,
) -> tuple[list[dict], RunSummary]:
    rows = [_page(run_id, i, i < n_ok, model, prune, PRICING) for i in range(n_ok + n_failed)]
    wall_s = 600.0 + 10 * n_ok
    node_seconds = {"m7i.xlarge": wall_s, "m7i.2xlarge": wall_s * 0.8, "g6.xlarge": gpu_nodes * wall_s * 0.7}
    loaded = sum(s * PRICING.node_usd_per_s(t) for t, s in node_seconds.items())
    direct = sum(r["cost_direct_usd"] for r in rows)
    summary = RunSummary(
        run_id=run_id,
        started_at=started_at,
        finished_at=started_at,
        wall_s=wall_s,
        documents=len(rows) // 4,
        pages_ok=n_ok,
        pages_failed=n_failed,
        visual_tokens=sum(r["visual_tokens"] for r in rows),
        visual_tokens_kept=sum(r["visual_tokens_kept"] for r in rows),
        gpu_s=sum(r["gpu_s"] for r in rows),
        cpu_s=sum(r["cpu_s"] for r in rows),
        model_id=model,
        model_mode="large",
        prune_method=prune,
        prune_config_hash=f"{prune}-hash",
        pricing_name=PRICING.name,
        cost_direct_usd=direct,
        node_seconds=node_seconds,
        cost_fully_loaded_usd=loaded,
        usd_per_1k_pages_direct=direct / n_ok * 1000 if n_ok else 0.0,
        usd_per_1k_pages_fully_loaded=loaded / n_ok * 1000 if n_ok else 0.0,
        utilisation=direct / loaded,
    )
    return rows, summary


@pytest.fixture
def corpus() -> tuple[pa.Table, list[RunSummary]]:
    """Four runs over three UTC days, two models and two pruning settings."""
    runs = [
        _run("r1", "2025-11-03T01:00:00+00:00", 40, 3),
        _run("r2", "2025-11-04T01:30:00+02:00", 25, 0, prune="none"),  # 2025-11-03 in UTC
        _run("r3", "2025-11-04T23:50:00Z", 33, 5, model="deepseek-ai/DeepSeek-OCR-2", gpu_nodes=2),
        _run("r4", "2025-11-05T00:10:00Z", 12, 1),
    ]
    rows = [r for run_rows, _ in runs for r in run_rows]
    return pa.Table.from_pylist(rows, schema=PAGES_SCHEMA), [s for _, s in runs]


def _by(tables, dimension):
    return {t.dimension: t for t in tables}[dimension]


def test_totals_equal_the_sum_of_the_rows(corpus):
    pages, summaries = corpus
    for table in build_tables(pages, summaries, parse_dimensions("run,day,model,prune,day+model")):
        for field in (
            "pages_ok",
            "pages_failed",
            "gpu_s",
            "visual_tokens",
            "visual_tokens_kept",
            "cost_direct_usd",
            "cost_fully_loaded_usd",
        ):
            assert getattr(table.total, field) == pytest.approx(sum(getattr(r, field) for r in table.rows))
        assert table.total.pages_ok == 110 and table.total.pages_failed == 9


def test_stored_costs_match_the_rows_and_summaries(corpus):
    pages, summaries = corpus
    total = build_tables(pages, summaries, [["run"]])[0].total
    assert total.cost_direct_usd == pytest.approx(sum(pages.column("cost_direct_usd").to_pylist()))
    assert total.cost_fully_loaded_usd == pytest.approx(sum(s.cost_fully_loaded_usd for s in summaries))
    assert total.usd_per_1k_pages_direct == pytest.approx(total.cost_direct_usd / 110 * 1000)
    assert total.gpu_hours == pytest.approx(sum(pages.column("gpu_s").to_pylist()) / 3600)
    assert total.kept_share == pytest.approx(
        sum(pages.column("visual_tokens_kept").to_pylist()) / sum(pages.column("visual_tokens").to_pylist())
    )


def test_repricing_with_the_run_time_table_reproduces_stored_costs(corpus):
    pages, summaries = corpus
    stored = build_tables(pages, summaries, [["run"]])[0]
    repriced = build_tables(pages, summaries, [["run"]], pricing=PRICING)[0]
    for a, b in zip(stored.rows, repriced.rows, strict=True):
        assert b.cost_direct_usd == pytest.approx(a.cost_direct_usd, rel=1e-12)
        assert b.cost_fully_loaded_usd == pytest.approx(a.cost_fully_loaded_usd, rel=1e-12)


def _scaled(pricing: Pricing, node_type: str, factor: float) -> Pricing:
    nodes = dict(pricing.node_types)
    nodes[node_type] = nodes[node_type].model_copy(
        update={"usd_per_hour": nodes[node_type].usd_per_hour * factor}
    )
    return pricing.model_copy(update={"name": f"x{factor}", "node_types": nodes})


def test_doubling_the_gpu_node_price_doubles_the_gpu_part_only(corpus):
    pages, summaries = corpus
    doubled = _scaled(PRICING, PRICING.gpu_node_type, 2.0)
    base = build_tables(pages, summaries, [["run"]], pricing=PRICING)[0]
    new = build_tables(pages, summaries, [["run"]], pricing=doubled)[0]
    gpu_s = {
        r: sum(pages.filter(pa.compute.equal(pages["run_id"], r)).column("gpu_s").to_pylist())
        for r in ("r1", "r2", "r3", "r4")
    }
    gpu_node_s = {s.run_id: s.node_seconds[PRICING.gpu_node_type] for s in summaries}
    for b, n in zip(base.rows, new.rows, strict=True):
        gpu_part = gpu_s[b.group] * PRICING.gpu_usd_per_s
        assert n.cost_direct_usd == pytest.approx(b.cost_direct_usd + gpu_part, rel=1e-12)
        gpu_node_part = gpu_node_s[b.group] * PRICING.node_usd_per_s(PRICING.gpu_node_type)
        assert n.cost_fully_loaded_usd == pytest.approx(b.cost_fully_loaded_usd + gpu_node_part, rel=1e-12)


def test_scaling_every_price_scales_every_cost_by_the_same_ratio(corpus):
    pages, summaries = corpus
    scaled = PRICING
    for node_type in PRICING.node_types:
        scaled = _scaled(scaled, node_type, 0.37)
    base = build_tables(pages, summaries, [["day"]], pricing=PRICING)[0]
    new = build_tables(pages, summaries, [["day"]], pricing=scaled)[0]
    for b, n in zip([*base.rows, base.total], [*new.rows, new.total], strict=True):
        assert n.usd_per_1k_pages_direct == pytest.approx(0.37 * b.usd_per_1k_pages_direct, rel=1e-12)
        assert n.usd_per_1k_pages_fully_loaded == pytest.approx(
            0.37 * b.usd_per_1k_pages_fully_loaded, rel=1e-12
        )
        assert n.utilisation == pytest.approx(b.utilisation, rel=1e-12)


def test_a_node_type_missing_from_the_new_pricing_is_an_error(corpus):
    pages, summaries = corpus
    nodes = {k: v for k, v in PRICING.node_types.items() if k != "m7i.2xlarge"}
    other = PRICING.model_copy(update={"node_types": nodes, "cpu_node_type": "c7i.4xlarge"})
    with pytest.raises(ReportError, match="m7i.2xlarge"):
        build_tables(pages, summaries, [["run"]], pricing=other)


def test_days_come_from_the_runs_start_in_utc(corpus):
    pages, summaries = corpus
    by_day = {r.group: r for r in build_tables(pages, summaries, [["day"]])[0].rows}
    assert sorted(by_day) == ["2025-11-03", "2025-11-04", "2025-11-05"]
    assert by_day["2025-11-03"].runs == 2 and by_day["2025-11-03"].pages_ok == 65  # r1 + r2 (+02:00)
    assert by_day["2025-11-04"].pages_ok == 33 and by_day["2025-11-05"].pages_ok == 12


def test_model_and_prune_groups_and_combinations(corpus):
    pages, summaries = corpus
    tables = build_tables(pages, summaries, parse_dimensions("model,prune,model+prune"))
    assert {r.group: r.pages_ok for r in _by(tables, "model").rows} == {
        "deepseek-ai/DeepSeek-OCR (large)": 77,
        "deepseek-ai/DeepSeek-OCR-2 (large)": 33,
    }
    assert {r.group: r.runs for r in _by(tables, "prune").rows} == {
        "none [none-hash]": 1,
        "rtprune [rtprune-hash]": 3,
    }
    assert len(_by(tables, "model+prune").rows) == 3


def test_a_run_with_nothing_new_still_costs_its_cluster_time(corpus):
    pages, summaries = corpus
    _, idle = _run("r5", "2025-11-06T01:00:00Z", 0, 0)
    rows = {r.group: r for r in build_tables(pages, [*summaries, idle], [["run"]])[0].rows}
    assert rows["r5"].pages_ok == 0 and rows["r5"].cost_fully_loaded_usd == pytest.approx(
        idle.cost_fully_loaded_usd
    )
    assert math.isnan(rows["r5"].usd_per_1k_pages_fully_loaded)


def test_a_run_without_summary_counts_its_pages_but_not_in_the_loaded_figures(corpus, tmp_path, capsys):
    pages, summaries = corpus  # r1 "crashed": its committed pages stay, its summary was never written
    tables = build_tables(pages, summaries[1:], parse_dimensions("run,day"))
    r1 = {r.group: r for r in _by(tables, "run").rows}["r1"]
    assert r1.pages_ok == 40 and math.isnan(r1.cost_fully_loaded_usd) and math.isnan(r1.utilisation)
    assert "unknown" in {r.group for r in _by(tables, "day").rows}
    total = _by(tables, "run").total
    assert total.pages_ok == 110 and total.runs_without_summary == 1
    assert total.cost_fully_loaded_usd == pytest.approx(sum(s.cost_fully_loaded_usd for s in summaries[1:]))
    # Per 1,000 pages of the runs whose cluster time is known, not diluted by r1's pages.
    assert total.usd_per_1k_pages_fully_loaded == pytest.approx(total.cost_fully_loaded_usd / 70 * 1000)
    report(CostReportConfig(output="unused://", out_dir=tmp_path), pages, summaries[1:])
    assert "without a summary (stopped before finishing): r1;" in capsys.readouterr().out


def test_unknown_grouping_is_rejected():
    with pytest.raises(ReportError, match="week"):
        parse_dimensions("run,week")


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_report_writes_a_chart_and_markdown_with_every_group(corpus, tmp_path, capsys):
    pages, summaries = corpus
    config = CostReportConfig(output="unused://", out_dir=tmp_path / "report")
    tables = report(config, pages, summaries)
    width, height = _png_size(tmp_path / "report" / CHART_NAME)
    assert width >= 800 and height >= 600 and (tmp_path / "report" / CHART_NAME).stat().st_size > 20_000
    md = (tmp_path / "report" / MARKDOWN_NAME).read_text()
    assert f"![cost per 1,000 pages]({CHART_NAME})" in md
    for t in tables:
        assert f"## By {t.dimension}" in md
        assert all(f"| {r.group} |" in md for r in t.rows)
    out = capsys.readouterr().out
    assert "2025-11-04" in out and "$/1k loaded" in out and "aws-ondemand-2025" in out


def test_cli_pricing_file_reprices(corpus, tmp_path):
    pages, summaries = corpus
    raw = yaml.safe_load(default_pricing_text())
    raw["name"] = "gpu-x3"
    raw["node_types"][raw["gpu_node_type"]]["usd_per_hour"] *= 3
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    config = parse_args(
        [
            "--output",
            "file:///x",
            "--pricing",
            str(tmp_path / "p.yaml"),
            "--by",
            "run",
            "--out-dir",
            str(tmp_path / "out"),
        ]
    )
    new = report(config, pages, summaries)[0].total
    base = build_tables(pages, summaries, [["run"]])[0].total
    gpu_part = sum(pages.column("gpu_s").to_pylist()) * PRICING.gpu_usd_per_s
    assert new.cost_direct_usd == pytest.approx(base.cost_direct_usd + 2 * gpu_part, rel=1e-12)
    assert "gpu-x3" in (tmp_path / "out" / MARKDOWN_NAME).read_text()


def test_cli_end_to_end_on_output_committed_by_the_pipeline(tmp_path, capsys):
    """Two runs written through the pipeline's own commit protocol and run summaries; the second re-does
    a changed document. The report reads them back with the pipeline's readers."""
    from jobs.cost_report import main
    from pipeline.cost import accounting
    from pipeline.store import output

    out = output.Output.open(str(tmp_path / "out"))
    runs = [("r1", "2025-11-03T02:00:00+00:00", ["d0", "d1"]), ("r2", "2025-11-04T02:00:00+00:00", ["d0"])]
    expected_direct = 0.0
    for run_id, started_at, docs in runs:
        rows = [
            {
                **_page(run_id, i, i != 3, "deepseek-ai/DeepSeek-OCR", "rtprune", PRICING),
                "doc_id": d,
                "content_hash": f"{d}-{run_id}",
            }
            for d in docs
            for i in range(4)
        ]
        table = pa.Table.from_pylist(rows, schema=PAGES_SCHEMA)
        documents = [
            {"doc_id": d, "content_hash": f"{d}-{run_id}", "source_uri": f"file:///in/{d}.pdf", "ok": False}
            for d in docs
        ]
        output.commit_part(out, run_id, 0, table, documents, engine_config_hash="e1")
        info = accounting.RunInfo(
            run_id=run_id,
            started_at=started_at,
            finished_at=started_at,
            wall_s=900.0,
            identity=EngineIdentity(
                model_id="deepseek-ai/DeepSeek-OCR",
                model_mode="large",
                prune_method="rtprune",
                prune_config_hash="rtprune-hash",
            ),
        )
        seconds = {"m7i.xlarge": 900.0, "m7i.2xlarge": 900.0, "g6.xlarge": 700.0}
        output.write_summary(out, accounting.summarize(table, info, seconds, PRICING))
        expected_direct += sum(r["cost_direct_usd"] for r in rows)

    rc = main(["--output", str(tmp_path / "out"), "--by", "run,day", "--out-dir", str(tmp_path / "report")])
    assert rc == 0
    md = (tmp_path / "report" / MARKDOWN_NAME).read_text()
    assert "| r1 | 1 | 6 | 2 |" in md and "| r2 | 1 | 3 | 1 |" in md  # r1's d0 was superseded, still paid
    assert "| 2025-11-03 |" in md and "| 2025-11-04 |" in md
    loaded = 2 * sum(s * PRICING.node_usd_per_s(t) for t, s in seconds.items())
    assert f"**{expected_direct:,.4f}**" in md and f"**{loaded:,.4f}**" in md
    assert (tmp_path / "report" / CHART_NAME).stat().st_size > 10_000
    assert "by day" in capsys.readouterr().out


def test_cli_reports_a_missing_node_type_as_an_error(tmp_path, capsys):
    from jobs.cost_report import main
    from pipeline.store import output

    _, summary = _run("r1", "2025-11-03T01:00:00Z", 2, 0)
    output.write_summary(output.Output.open(str(tmp_path / "out")), summary)
    raw = yaml.safe_load(default_pricing_text())
    del raw["node_types"]["m7i.xlarge"]
    raw["head_node_type"] = "c7i.4xlarge"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    assert (
        main(
            [
                "--output",
                str(tmp_path / "out"),
                "--pricing",
                str(tmp_path / "p.yaml"),
                "--out-dir",
                str(tmp_path / "report"),
            ]
        )
        == 2
    )
    assert "m7i.xlarge" in capsys.readouterr().err


def test_the_printed_tables_show_the_layout_counts_and_the_adaptive_re_reads():
    """The columns the run summary counts reach both printed forms of the report (terminal and Markdown)."""
    from pipeline.cost.report_text import format_markdown, format_text

    rows, summary = _run("r1", "2025-11-03T01:00:00Z", 8, 0)
    for i, row in enumerate(rows):
        row.update(n_tables=i % 2, n_formulas=2, n_figures=3 * (i < 3))
    rows[0].update(adaptive_rerun="kept_unpruned", adaptive_rerun_gpu_s=0.4)
    table = build_tables(pa.Table.from_pylist(rows, schema=PAGES_SCHEMA), [summary], [["run"]])[0]
    for text, cells in ((format_text(table), _text_cells), (format_markdown(table), _markdown_cells)):
        shown = dict(zip(cells(text.splitlines()[0]), cells(text.splitlines()[-1]), strict=True))
        assert [shown[c].strip("*") for c in ("tables", "formulas", "figures", "re-read")] == [
            "4",
            "16",
            "9",
            "1",
        ]
        assert float(shown["$ re-read"].strip("*")) == pytest.approx(0.4 * PRICING.gpu_usd_per_s, abs=1e-4)


def _text_cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())  # columns are two spaces apart; headers hold single spaces


def _markdown_cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("|").split("|")]
