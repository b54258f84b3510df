"""End to end on a tiny random model: PDFs -> sweep -> table, plot and advice. Random weights make the
scores meaningless; what is checked is the machinery: every setting runs on every page, keeping every token
reproduces the unpruned text, and the recommendation follows the target."""

import json

import pytest
from evaluation_fixtures import write_born_digital_pdfs

from jobs.evaluate import main
from pipeline.cost.pricing import load_pricing
from rtprune.engines.contract import EngineConfig
from rtprune.evaluation.datasets import load_pdf_sample
from rtprune.evaluation.report import read_csv
from rtprune.evaluation.sweep import UNPRUNED, recommend, supports_dynamic

MODEL = "tiny-random-v1"
MAX_NEW_TOKENS = 6


@pytest.fixture(scope="module")
def pdf_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pdfs")
    write_born_digital_pdfs(folder, docs=2, pages_per_doc=1)
    return folder


@pytest.fixture(scope="module")
def job_run(pdf_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    code = main(
        [
            "--corpus",
            str(pdf_folder),
            "--sample-pages",
            "2",
            "--model",
            MODEL,
            "--mode",
            "tiny",
            "--max-new-tokens",
            str(MAX_NEW_TOKENS),
            "--methods",
            "rtprune,norm,padding",
            "--retentions",
            "0.1,1.0",
            "--batch-size",
            "2",
            "--target-agreement",
            "0",
            "--output",
            str(out),
        ]
    )
    return code, out


def test_every_setting_is_evaluated_on_every_page(job_run):
    code, out = job_run
    assert code == 0
    rows = read_csv(out / "sweep.csv")
    # RTPrune with dynamic retention joins the default grid once the pruning library has it.
    dynamic = ["rtprune-dynamic@0.84"] if supports_dynamic() else []
    assert [r.label for r in rows] == [
        "none",
        "rtprune@0.1",
        "rtprune@1",
        "norm@0.1",
        "norm@1",
        "padding@0.1",
        "padding@1",
        *dynamic,
    ]
    assert all(r.pages == 2 for r in rows)
    # Born-digital pages have references, so accuracy is measured for every setting.
    assert all(r.accuracy is not None and 0.0 <= r.accuracy <= 1.0 for r in rows)
    # Pricing comes from the measured GPU seconds and the default pricing table.
    rate = load_pricing().gpu_usd_per_s
    assert all(
        r.gpu_s_per_page > 0 and r.usd_per_1k_pages == pytest.approx(1000 * r.gpu_s_per_page * rate)
        for r in rows
    )
    by_label = {r.label: r for r in rows}
    assert by_label["rtprune@0.1"].kept_share < 0.5 and by_label["norm@0.1"].kept_share < 0.5
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "(recommended)" in (out / "sweep.md").read_text()


def test_keeping_every_token_agrees_exactly(job_run):
    _, out = job_run
    rows = read_csv(out / "sweep.csv")
    keep_all = [r for r in rows if r.retention == 1.0]
    assert len(keep_all) == 4
    assert all(r.agreement == 1.0 and r.kept_share == 1.0 for r in keep_all)
    assert len({r.accuracy for r in keep_all}) == 1  # same text as unpruned, so the same accuracy
    # The column is not constant: keeping a tenth of the tokens changes even a random model's text.
    assert min(r.agreement for r in rows if r.retention == 0.1) < 1.0


def test_recommendation_follows_the_target(job_run):
    _, out = job_run
    rows = read_csv(out / "sweep.csv")
    advice = json.loads((out / "recommendation.json").read_text())
    cheapest = min(rows, key=lambda r: r.usd_per_1k_pages)
    assert advice["setting"]["label"] == cheapest.label  # target 0: everyone meets it
    exact = recommend(rows, metric="agreement", target=1.0).setting
    assert exact.agreement == 1.0
    assert exact.usd_per_1k_pages == min(r.usd_per_1k_pages for r in rows if r.agreement == 1.0)
    impossible = recommend(rows, metric="agreement", target=1.01)
    assert impossible.setting is None and "no setting reaches" in impossible.reason


def test_shared_encoding_gives_the_engine_own_text(pdf_folder):
    from rtprune.evaluation.engine_runner import EngineSettingsRunner

    runner = EngineSettingsRunner(EngineConfig(model=MODEL, mode="tiny", max_new_tokens=MAX_NEW_TOKENS))
    images = [p.image for p in load_pdf_sample(str(pdf_folder), sample_pages=2, dpi=72).pages]
    swept = runner(images, [UNPRUNED, UNPRUNED])
    direct = runner.engine.ocr(images)
    assert [r.text for r in swept[0]] == [r.text for r in swept[1]] == [r.text for r in direct]
    assert [r.usage.visual_tokens for r in swept[0]] == [r.usage.visual_tokens for r in direct]
