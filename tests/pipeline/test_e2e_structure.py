"""Structured pages end to end (local Ray, real render, OCR stage, commit and export; the engine a test
double that answers with recorded grounding outputs): a run that dies at its first commit point leaves its
figures out of view, the next run commits every figure exactly once and links it, orphan cleaning removes
the dead run's files, a run after it writes none again, and the export copies and links the figures."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from structure_fixtures import FIGURE_PT, _pdf_with_figure, grounding_text

from pipeline.config import PipelineConfig
from pipeline.samples import sample_pdf_bytes
from pipeline.store import paths
from pipeline.store.output import Output
from pipeline.store.read import read_committed

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.ci,
]  # a minute or more: CI runs it (-m "slow and ci")
pytest.importorskip("rtprune.engines.hf.engine")

FIGURES = {"a_figure.pdf": 1, "b_manual.pdf": 7, "c_plain.pdf": 0}  # image blocks with a box per document


def _manual_pdf() -> bytes:
    """Two pages at the sizes of the recorded outputs: the Gundam manual's (1170 x 1654 px at 144 dpi) with
    something drawn where its figures are, and the truth tables'."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=585, height=827)
    for x0, y0, x1, y1 in [(150, 249, 377, 400), (425, 250, 640, 400), (690, 250, 910, 400)]:
        page.draw_rect(pymupdf.Rect(x0 * 0.585, y0 * 0.827, x1 * 0.585, y1 * 0.827), fill=(0, 0, 1))
    doc.new_page(width=600, height=800).insert_text((72, 72), "truth tables", fontsize=12)
    return doc.tobytes()


def _plain_pdf() -> bytes:
    import pymupdf

    doc = pymupdf.open(stream=sample_pdf_bytes(1))
    doc[0].set_mediabox(pymupdf.Rect(0, 0, 500, 500))
    return doc.tobytes()


def _config(root: Path, run_id: str) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "input": str(root / "in"),
            "output": str(root / "out"),
            "run_id": run_id,
            "commit_documents": 1,
            "orphan_grace_s": 0,
            "engine": {"model": "tiny-random-v1", "backend": "hf", "mode": "gundam"},
            "pools": {"render_actors": 1, "render_num_cpus": 0.5, "ocr_num_gpus": 1, "ocr_num_cpus": 0.5},
        }
    )


def _figure_files(out: Output) -> list[str]:
    return sorted(p.split(out.root + "/", 1)[1] for p in out.glob(paths.FIGURE_GLOB))


class DriverDied(RuntimeError):
    pass


@pytest.fixture(scope="module")
def runs(local_ray, tmp_path_factory):
    """r1 dies at the commit point of its first part with figures (figures and part written, no ledger
    record); r2 does the rest; r3 finds nothing to do. What each left behind."""
    import ray
    import recorded_engine

    from pipeline.driver.run import run_pipeline
    from pipeline.stages import ocr

    root = tmp_path_factory.mktemp("structure")
    (root / "in").mkdir()
    for name, data in (("a_figure.pdf", _pdf_with_figure()), ("b_manual.pdf", _manual_pdf())):
        (root / "in" / name).write_bytes(data)
    (root / "in" / "c_plain.pdf").write_bytes(_plain_pdf())
    ray.cloudpickle.register_pickle_by_value(recorded_engine)
    stage = recorded_engine.recorded_stage(recorded_engine.recordings(grounding_text()))
    out = Output.open(str(root / "out"))
    seen = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ocr, "OcrStage", stage)
        real_put = Output.put_atomic

        def die_at_the_ledger(self, path, data):
            if f"/{paths.LEDGER}/" in path and b'"figure_folder"' in data:
                raise DriverDied("the driver died at its commit point")
            real_put(self, path, data)

        with patch.context() as dying:
            dying.setattr(Output, "put_atomic", die_at_the_ledger)
            with pytest.raises(DriverDied):
                run_pipeline(_config(root, "r1"))
        seen["r1_files"], seen["r1_rows"] = _figure_files(out), read_committed(str(root / "out")).to_pylist()
        seen["r2"] = run_pipeline(_config(root, "r2"))
        seen["r2_files"] = _figure_files(out)
        seen["r3"] = run_pipeline(_config(root, "r3"))
        seen["r3_files"] = _figure_files(out)
    seen["rows"] = read_committed(str(root / "out")).to_pylist()
    seen["root"] = root
    return seen


def test_a_run_that_dies_at_its_commit_point_leaves_no_figure_in_view(runs):
    # what r1 committed before it died holds no figure: the part with figures never became visible
    assert not [b for r in runs["r1_rows"] for b in r["blocks"] if b["figure"] or b["kind"] == "figure"]
    assert runs["r1_files"] and all(paths.figure_part(f)[0] == "r1" for f in runs["r1_files"])
    assert not any(f.startswith("figures/r1/") for f in runs["r2_files"])  # cleaned as orphans by r2


def test_every_figure_is_committed_exactly_once_and_linked(runs):
    rows = runs["rows"]
    assert max(Counter((r["doc_id"], r["page_index"]) for r in rows).values()) == 1
    keys = [b["figure"] for r in rows for b in r["blocks"] if b["figure"]]
    assert sorted(keys) == runs["r2_files"] == runs["r3_files"]  # one file per figure, none twice, no other
    by_doc = Counter(r["source_uri"].rsplit("/", 1)[-1] for r in rows for b in r["blocks"] if b["figure"])
    assert by_doc == {k: v for k, v in FIGURES.items() if v}
    for row in rows:
        for block in row["blocks"]:
            if block["figure"]:
                assert f"![]({block['figure']})" in row["markdown"]
                assert paths.figure_part(block["figure"])[0] == "r2"
    assert runs["r3"].documents == 0 and runs["r3"].figures == 0


def test_layout_columns_and_the_runs_counts(runs):
    rows = {(r["source_uri"].rsplit("/", 1)[-1], r["page_index"]): r for r in runs["rows"]}
    figure_page = rows[("a_figure.pdf", 0)]
    (figure,) = [b for b in figure_page["blocks"] if b["kind"] == "figure"]
    assert figure["box_pt"] == pytest.approx(list(FIGURE_PT), abs=0.6)
    assert figure_page["layout_parsed"] and figure_page["model_id"] == "recorded-grounding"
    assert rows[("b_manual.pdf", 1)]["n_tables"] > 0 and rows[("b_manual.pdf", 0)]["n_figures"] == 7
    plain = rows[("c_plain.pdf", 0)]
    assert not plain["layout_parsed"] and plain["markdown"] == "no recording for this page"
    summary = runs["r2"]
    assert summary.figures == sum(r["n_figures"] for r in runs["rows"]) == 8
    assert summary.tables == sum(r["n_tables"] for r in runs["rows"]) > 0
    assert summary.pages_layout_parsed == 3


def test_the_export_copies_the_figures_beside_each_document_and_links_them(runs):
    from pipeline.export.config import ExportConfig
    from pipeline.export.run import run_export

    root = runs["root"]
    result = run_export(ExportConfig(output=str(root / "out"), dest=str(root / "export")))
    assert (result.figure_files, result.viewer_files, result.markdown_files) == (8, 3, 3)
    markdown_dir = root / "export" / "markdown"
    links = []
    for md in markdown_dir.glob("*.md"):
        text = md.read_text(encoding="utf-8")
        assert "<|ref|>" not in text and "figures/" not in text  # clean, and no link into the output
        for link in [line.split("](", 1)[1].split(")", 1)[0] for line in text.splitlines() if "![](" in line]:
            assert (md.parent / link).is_file(), link
            links.append(link)
        assert (md.with_suffix(".html")).is_file()
    assert len(links) == 8 and len(list(markdown_dir.glob("*/*.png"))) == 8
    (shard,) = (root / "export" / "jsonl").glob("*/*.jsonl")
    records = [json.loads(line) for line in shard.read_text(encoding="utf-8").splitlines()]
    blocks = [b for r in records for p in r["metadata"]["pages"] for b in p["blocks"]]
    assert sum(b["figure"] != "" for b in blocks) == 8
    assert all((root / "export" / b["figure"]).is_file() for b in blocks if b["figure"])
