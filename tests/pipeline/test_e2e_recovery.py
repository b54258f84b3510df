"""One pipeline run (local Ray, logical GPUs, the real engine with tiny random weights that loop) over a
born-digital document, a scan, a document that drives the renderer past its memory limit, and a document
after it: second chances, flags, the render memory limit and the summary's counts, end to end."""

from __future__ import annotations

from collections import Counter

import pytest

from pipeline.config import PipelineConfig
from pipeline.samples import noisy_pdf_bytes, sample_pdf_bytes
from pipeline.store.read import read_committed, read_summaries

pytestmark = pytest.mark.ray
pytest.importorskip("rtprune.engines.hf.engine")

from pipeline_fixtures import ENGINE_OVERRIDES  # noqa: E402


def _huge_page_pdf(side_pt: float = 7_000) -> bytes:
    """At 144 dpi a 14,000 x 14,000 px pixmap: 588 MB in one allocation."""
    import pymupdf

    doc = pymupdf.open()
    doc.new_page(width=side_pt, height=side_pt).insert_text((72, 72), "huge", fontsize=24)
    return doc.tobytes()


DOCS = {
    "a_born.pdf": (sample_pdf_bytes(2), 2),
    "b_hog.pdf": (_huge_page_pdf(), 1),
    "c_scan.pdf": (noisy_pdf_bytes(image_px=120), 1),
    "d_after.pdf": (sample_pdf_bytes(2, seed=3), 2),
}


@pytest.fixture(scope="module")
def run_result(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("recovery")
    for name, (data, _) in DOCS.items():
        (root / "in").mkdir(exist_ok=True)
        (root / "in" / name).write_bytes(data)
    cfg = PipelineConfig.model_validate(
        {
            "input": str(root / "in"),
            "output": str(root / "out"),
            "commit_documents": 2,
            "engine": {
                **ENGINE_OVERRIDES,
                "max_new_tokens": 16,
                "repetition_ngram": 2,
                "repetition_window": 16,
            },
            # The child holds ~450-600 MB before any document: 900 MB fits every page here but the huge one.
            "render": {"memory_limit_mb": 900, "max_pixels_per_page": 10**9, "timeout_s": 120},
            "pools": {
                "render_actors": 1,
                "render_num_cpus": 0.5,
                "ocr_num_gpus": 1,
                "ocr_num_cpus": 0.5,
                "ocr_batch_size": 8,
                "ocr_sub_batch_size": 4,
            },
        }
    )
    from pipeline.driver.run import run_pipeline

    summary = run_pipeline(cfg)
    return summary, read_committed(str(root / "out")).to_pylist(), read_summaries(str(root / "out"))


def _by_doc(rows):
    out: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["page_index"]):
        out.setdefault(r["source_uri"].rsplit("/", 1)[-1], []).append(r)
    return out


def test_every_page_leaves_exactly_once(run_result):
    _, rows, _ = run_result
    docs = _by_doc(rows)
    assert {name: len(r) for name, r in docs.items()} == {name: n for name, (_, n) in DOCS.items()}
    assert max(Counter((r["doc_id"], r["page_index"]) for r in rows).values()) == 1


def test_the_memory_hog_is_an_error_row_and_the_next_document_renders(run_result):
    docs = _by_doc(run_result[1])
    (hog,) = docs["b_hog.pdf"]
    assert (hog["status"], hog["error_stage"], hog["page_index"]) == ("error", "render", -1)
    assert hog["error"].startswith("out of memory") and "900 MB" in hog["error"]
    assert all(r["status"] == "ok" for r in docs["d_after.pdf"])  # same render actor, a fresh child


def test_looping_pages_are_retried_then_take_their_text_layer_and_the_scan_keeps_its_ocr(run_result):
    docs = _by_doc(run_result[1])
    for r in docs["a_born.pdf"] + docs["d_after.pdf"]:
        assert r["status"] == "ok" and r["text_source"] == "text_layer" and r["ocr_attempts"] == 2
        assert r["finish_reason"] in ("repetition", "length") and r["text"].strip()
        assert r["visual_tokens_kept"] > r["visual_tokens"] / 2  # the unpruned retry's tokens are in
        assert r["cost_direct_usd"] > 0
    (scan,) = docs["c_scan.pdf"]
    assert scan["text_source"] == "ocr" and scan["ocr_attempts"] == 2 and scan["text"]
    assert scan["finish_reason"] in ("repetition", "length")


def test_the_summary_counts_match_the_rows(run_result):
    summary, rows, stored = run_result
    assert stored == [summary]
    ok = [r for r in rows if r["status"] == "ok"]
    assert (summary.pages_ok, summary.pages_failed) == (len(ok), len(rows) - len(ok))
    assert summary.pages_retried == sum(r["ocr_attempts"] > 1 for r in rows) == 5
    assert summary.pages_text_layer == sum(r["text_source"] == "text_layer" for r in rows) == 4
    assert summary.pages_recovered == sum(r["text_source"] == "ocr_retry" for r in rows) == 0
    flagged = {r["doc_id"] for r in rows if r["doc_flagged"]}
    assert summary.documents_flagged == len(flagged) == 4  # every document here failed past 20% of its pages
    assert summary.gpu_s == pytest.approx(sum(r["gpu_s"] for r in rows))
