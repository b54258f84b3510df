"""The quality report: exact numbers on a table built in code, and the job end to end on output the OCR
stage produced (tiny random model) and committed with the pipeline's own protocol."""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pytest

from jobs.quality import CHART_NAME, MARKDOWN_NAME, main
from pipeline.cost.quality_report import QUANTILES, build_quality_report, format_text, group_cells
from pipeline.stages.rows import RunStamp, new_row, to_table
from rtprune.engines.contract import EngineIdentity


def _row(run: str, prune: str, i: int, **columns) -> dict:
    stamp = RunStamp(run, EngineIdentity("m", "large", prune, f"{prune}-h"))
    row = new_row(stamp, {"doc_id": f"d{i}", "source_uri": f"s3://b/d{i}.pdf", "content_hash": "c"}, 0, 1)
    return row | {"text": f"page {i} text", "text_source": "ocr", "finish_reason": "eos"} | columns


def _table() -> pa.Table:
    """Run r1 pruned: 10 scored pages with known means (two suspect), a text-layer page (not scored) and
    an error row; run r2 unpruned: 3 scored pages."""
    means = [-0.1 * k for k in range(10)]
    rows = [
        _row(
            "r1",
            "rtprune",
            k,
            scored_tokens=50,
            mean_logprob=m,
            min_logprob=m - 2,
            language="de" if k < 6 else "en",
            suspect=k >= 8,
            suspect_reasons="repeated_ngrams,low_confidence"
            if k == 9
            else ("low_confidence" if k == 8 else ""),
            adaptive_rerun="kept_pruned" if k == 9 else "",
        )
        for k, m in enumerate(means)
    ]
    rows.append(_row("r1", "rtprune", 10, text_source="text_layer", language=""))
    rows.append(_row("r1", "rtprune", 11) | {"status": "error", "error_stage": "ocr", "text": ""})
    rows += [_row("r2", "none", k, scored_tokens=9, mean_logprob=-0.05 * k, language="fr") for k in range(3)]
    return to_table(rows)


def test_groups_quantiles_reasons_languages_and_the_worst_pages():
    report = build_quality_report(_table(), worst=3)
    r1, r2 = report.groups
    assert (r1.run_id, r1.prune, r1.pages, r1.scored) == ("r1", "rtprune [rtprune-h]", 11, 10)
    want = np.quantile([-0.1 * k for k in range(10)], QUANTILES)  # linear interpolation, as Arrow's
    assert r1.quantiles == pytest.approx(tuple(want))
    assert r1.suspect == 2 and r1.adaptive == 1
    assert r1.reasons["low_confidence"] == 2 and r1.reasons["repeated_ngrams"] == 1
    assert r1.reasons["repetition"] == 0  # "repeated_ngrams" must not count as "repetition"
    assert r1.languages == [("de", 6), ("en", 4), ("", 1)]
    assert (r2.pages, r2.scored, r2.languages) == (3, 3, [("fr", 3)])
    assert [(w.run_id, w.source_uri, w.mean_logprob) for w in report.worst] == [
        ("r1", "s3://b/d9.pdf", pytest.approx(-0.9)),
        ("r1", "s3://b/d8.pdf", pytest.approx(-0.8)),
        ("r1", "s3://b/d7.pdf", pytest.approx(-0.7)),
    ]
    assert report.worst[0].suspect_reasons == "repeated_ngrams,low_confidence"
    assert report.worst[0].excerpt == "page 9 text"
    text = format_text(*group_cells(report))
    assert "r1 / rtprune [rtprune-h]" in text and "de 6, en 4, ? 1" in text
    assert "repeated_ngrams 1, low_confidence 2" in text and "repetition" not in text


def test_no_pages_no_groups():
    empty = build_quality_report(_table().slice(0, 0))
    assert empty.groups == [] and empty.worst == []
    unscored = build_quality_report(to_table([_row("r", "none", 0)]))
    assert unscored.groups[0].scored == 0 and all(np.isnan(unscored.groups[0].quantiles))
    assert unscored.worst == []


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    """Pages OCR'd by the tiny random model, pruned and unpruned (one run each), committed as parts."""
    torch = pytest.importorskip("torch")
    from test_page_policy import _rows  # the born-digital page and the scan

    from pipeline.config import PagePolicy
    from pipeline.stages.ocr import ocr_pages
    from pipeline.store import output
    from rtprune.api import PruneConfig
    from rtprune.engines.contract import EngineConfig
    from rtprune.engines.hf.engine import OcrEngine

    root = str(tmp_path_factory.mktemp("out"))
    out = output.Output.open(root)
    tables = {}
    for run, prune in (("r-pruned", PruneConfig()), ("r-full", PruneConfig(method="none"))):
        engine = OcrEngine(EngineConfig(model="tiny-random-v1", mode="tiny", max_new_tokens=8, prune=prune))
        rows = [r | {"run_id": run} for r in _rows()]
        pages = ocr_pages(engine, rows, 4, (torch.OutOfMemoryError,), policy=PagePolicy(retry_on=()))
        table = to_table(pages)
        docs = [{"doc_id": "d", "content_hash": "c", "source_uri": "s3://b/d.pdf", "ok": True}]
        output.commit_part(out, run, 0, table, docs, engine_config_hash=run)
        tables[run] = table
    return root, tables


def test_the_job_reports_committed_output(committed, tmp_path, capsys):
    root, tables = committed
    assert main(["--output", root, "--out-dir", str(tmp_path), "--worst", "3"]) == 0
    md = (tmp_path / MARKDOWN_NAME).read_text()
    for run, table in tables.items():
        assert f"| {run} / " in md
        means = table["mean_logprob"].to_pylist()
        assert table["scored_tokens"].to_pylist() == table["output_tokens"].to_pylist()  # every page scored
        assert f"{np.median(means):.3f}" in md  # the median of the run's pages
    lowest = min(v for t in tables.values() for v in t["mean_logprob"].to_pylist())
    assert f"| {lowest:.3f} |" in md.split("## Pages to look at first")[1].splitlines()[4]
    png = (tmp_path / CHART_NAME).read_bytes()
    width, height = struct.unpack(">II", png[16:24])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and width >= 1000 and height >= 200
    assert "pages to look at first" in capsys.readouterr().out
