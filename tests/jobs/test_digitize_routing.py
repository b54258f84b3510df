"""The embedded default job with routing on: born-digital sample pages take their text layer, a scanned
document goes to OCR; every page once, routed rows carry no OCR usage, the console and the summary say what
routing did, and a rerun does nothing."""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest

from pipeline.samples import scanned_pdf_bytes, write_samples
from pipeline.stages.routed_render import TEXT_SOURCE_ROUTED
from pipeline.store.read import read_committed

pytestmark = pytest.mark.ray
pytest.importorskip("rtprune.engines.hf.engine")

from pipeline_fixtures import ENGINE_OVERRIDES as ENGINE  # noqa: E402
from pipeline_fixtures import job_env  # noqa: E402

OCR_USAGE = ("gpu_s", "encode_s", "prune_s", "prefill_s", "decode_s", "visual_tokens", "output_tokens")


def _input(root: Path) -> dict[str, int]:
    """The embedded default's six samples (12 born-digital pages) and one scanned document of 2 pages."""
    pages = write_samples(root / "out" / "samples", documents=6)
    (root / "out" / "samples" / "scan-000.pdf").write_bytes(scanned_pdf_bytes(2, seed=9))
    return {**pages, "scan-000.pdf": 2}


def _config(run_id: str):
    from jobs.digitize import load_config

    return load_config(
        None, ["routing.mode=text_layer", f"engine.model={ENGINE['model']}", f"run_id={run_id}"]
    )


def _page_counts(table) -> Counter:
    names = [u.rsplit("/", 1)[1] for u in table["source_uri"].to_pylist()]
    return Counter(zip(names, table["page_index"].to_pylist(), strict=True))


@pytest.mark.slow
@pytest.mark.ci
def test_embedded_default_with_routing(local_ray, tmp_path, monkeypatch):
    from jobs.digitize import human_summary
    from pipeline.driver.console import ConsoleProgress
    from pipeline.driver.run import run_pipeline

    monkeypatch.chdir(tmp_path)
    pages = _input(tmp_path)
    console = io.StringIO()
    cfg = _config("routed-1")
    summary = run_pipeline(cfg, ConsoleProgress(console, tty=False))
    table = read_committed(str(tmp_path / "out"))
    assert _page_counts(table) == Counter({(n, i): 1 for n, c in pages.items() for i in range(c)})
    routed = table.filter(pc.equal(table["route"], "text_layer"))
    ocr = table.filter(pc.equal(table["route"], "ocr"))
    assert {u.rsplit("/", 1)[1] for u in ocr["source_uri"].to_pylist()} == {"scan-000.pdf"}
    assert (routed.num_rows, ocr.num_rows) == (12, 2) and set(table["status"].to_pylist()) == {"ok"}
    for row in routed.to_pylist():
        assert all(row[c] == 0 for c in OCR_USAGE) and row["ocr_attempts"] == 0
        assert row["text_source"] == TEXT_SOURCE_ROUTED and row["text"].startswith("# Section")
        assert row["cpu_s"] > 0 and row["cost_direct_usd"] > 0 and row["feat_chars"] > 100
    for row in ocr.to_pylist():
        assert row["route_reason"] == "no_text_layer" and row["ocr_attempts"] >= 1 and row["gpu_s"] > 0
    assert (summary.pages_ok, summary.pages_routed, summary.pages_ocr) == (14, 12, 2)
    assert summary.gpu_s_avoided_estimate == pytest.approx(12 * summary.gpu_s / 2)
    assert summary.usd_per_1k_pages_direct_without_routing > summary.usd_per_1k_pages_direct
    assert "12 routed" in console.getvalue().splitlines()[-1]  # the progress line's last state
    assert "routing: 12 pages took their own text layer (no GPU), 2 went to OCR" in human_summary(
        summary, cfg
    )
    again = run_pipeline(_config("routed-2"))
    assert (again.documents, again.pages_ok, again.pages_routed) == (0, 0, 0)
    assert read_committed(str(tmp_path / "out")).num_rows == 14


@pytest.mark.slow
def test_the_readme_command_routes_every_sample_page(tmp_path):
    """./ocr digitize routing.mode=text_layer on the embedded default: every sample page is born-digital."""
    env = job_env()
    command = [
        sys.executable,
        "-m",
        "jobs.digitize",
        "routing.mode=text_layer",
        f"engine.model={ENGINE['model']}",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "12 pages ok, 0 failed" in done.stdout
    assert "routing: 12 pages took their own text layer (no GPU), 0 went to OCR" in done.stdout
    print(done.stdout)  # the README shows this output
