"""Model faults through the real engine (tiny random weights) inside the pipeline's OCR actors: a page the
engine raises on fails alone, a page that repeats is stopped by the repetition guard and flagged, and a
page that never ends is stopped by the token cap and flagged.

Not covered here: an out-of-memory on a batch. The engine raises torch.OutOfMemoryError only on CUDA, and
the pipeline has no fault-injection hook to raise it inside an OCR actor (see docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .hostile_pdfs import healthy_pdf, sliver_page_pdf
from .pipeline_harness import exactly_once_problems, local_ray, pipeline_config, rows_by_doc, write_inputs

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SMALL = (300, 300)  # small pages keep the v2 encoder's CPU time down


def _run(
    tmp_path: Path, docs: dict[str, bytes], engine: dict[str, Any], page_policy: dict[str, Any] | None = None
) -> tuple[dict[str, str], Any]:
    from pipeline.driver.run import run_pipeline
    from pipeline.store.read import read_committed

    uris = write_inputs(tmp_path / "in", docs)
    cfg = pipeline_config(
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        engine=engine,
        pools={"ocr_batch_size": 8, "ocr_sub_batch_size": 4},
        page_policy=page_policy or {},
    )
    with local_ray():
        run_pipeline(cfg)
    return uris, read_committed(str(tmp_path / "out"))


def test_engine_exception_fails_one_page_and_repetition_is_flagged(tmp_path: Path) -> None:
    # tiny-random-v2's image processor keeps the aspect ratio: the 40,000 x 2 px sliver becomes 0 px high
    # and it raises ValueError, inside the batch with the healthy pages. A 2-gram guard stops the random
    # model's loops early.
    engine = {"model": "tiny-random-v2", "max_new_tokens": 64, "repetition_ngram": 2, "repetition_window": 8}
    docs = {"sliver.pdf": sliver_page_pdf(), "healthy.pdf": healthy_pdf(2, "beside", size_pt=SMALL)}
    uris, table = _run(tmp_path, docs, engine)
    assert exactly_once_problems(table, {uris["sliver.pdf"]: 2, uris["healthy.pdf"]: 2}) == []
    sliver = rows_by_doc(table)[uris["sliver.pdf"]]
    assert sliver[0]["status"] == "ok", sliver[0]
    assert sliver[1]["status"] == "error" and sliver[1]["error_stage"] == "ocr", sliver[1]
    assert "ValueError" in sliver[1]["error"], sliver[1]["error"]
    ok_rows = [r for r in table.to_pylist() if r["status"] == "ok"]
    assert len(ok_rows) == 3
    assert all(r["finish_reason"] == "repetition" and r["output_tokens"] < 64 for r in ok_rows), ok_rows


def test_token_cap_stops_a_page_that_never_ends(tmp_path: Path) -> None:
    # With the default guard (30-gram in a 90-token window) nothing trips within 16 tokens: the cap does.
    # No retries: one attempt's tokens per page (retries are tests/pipeline/test_page_policy.py's subject).
    engine = {"model": "tiny-random-v1", "mode": "tiny", "max_new_tokens": 16}
    uris, table = _run(tmp_path, {"long.pdf": healthy_pdf(3, "cap", size_pt=SMALL)}, engine, {"retry_on": []})
    rows = rows_by_doc(table)[uris["long.pdf"]]
    assert [r["status"] for r in rows] == ["ok"] * 3
    capped = [r for r in rows if r["finish_reason"] == "length"]
    assert capped, rows  # the random model does not emit EOS within 16 tokens
    assert all(r["output_tokens"] == 16 for r in capped), capped
    assert all(r["output_tokens"] <= 16 for r in rows)
