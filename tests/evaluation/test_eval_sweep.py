import pytest
from PIL import Image

from rtprune.api import PruneConfig
from rtprune.engines.contract import PageResult, PageUsage
from rtprune.evaluation.datasets import EvalPage
from rtprune.evaluation.sweep import (
    UNPRUNED,
    SettingResult,
    recommend,
    run_sweep,
    setting_label,
    settings_grid,
    summarize_setting,
)


def usage(visual=100, kept=100, prefill_s=0.5, decode_s=1.0):
    return PageUsage(
        visual_tokens=visual,
        visual_tokens_kept=kept,
        prompt_tokens=kept + 10,
        output_tokens=5,
        encode_s=0.25,
        prune_s=0.0,
        prefill_s=prefill_s,
        decode_s=decode_s,
        finish_reason="eos",
    )


def result(label, usd, agreement, accuracy=None, kept_share=0.8):
    return SettingResult(
        label=label,
        method=label.split("@")[0],
        retention=0.5,
        dynamic=False,
        pages=2,
        accuracy=accuracy,
        agreement=agreement,
        kept_share=kept_share,
        prefill_s_per_page=0.1,
        gpu_s_per_page=1.0,
        usd_per_1k_pages=usd,
    )


def test_grid_starts_with_the_unpruned_reference_and_has_no_duplicates():
    grid = settings_grid(["rtprune", "none", "norm", "rtprune"], [0.5, 1.0])
    assert grid[0] == UNPRUNED
    assert [setting_label(c) for c in grid] == ["none", "rtprune@0.5", "rtprune@1", "norm@0.5", "norm@1"]
    from_iterator = settings_grid(["rtprune", "norm"], iter([0.5]))
    assert [setting_label(c) for c in from_iterator] == ["none", "rtprune@0.5", "norm@0.5"]


def test_grid_dynamic_settings_when_prune_config_supports_them():
    try:
        PruneConfig(method="rtprune", retention=0.8, dynamic=True)
    except TypeError:
        with pytest.raises(ValueError, match="dynamic"):
            settings_grid(["rtprune"], [0.8], dynamic_retentions=[0.8])
        return
    grid = settings_grid(["rtprune"], [0.8], dynamic_retentions=[0.8])
    assert [setting_label(c) for c in grid] == ["none", "rtprune@0.8", "rtprune-dynamic@0.8"]


def test_summarize_hand_computed_setting():
    results = [
        PageResult("Hello world", usage(visual=100, kept=50, prefill_s=0.2, decode_s=0.55)),
        PageResult("abcd", usage(visual=300, kept=150, prefill_s=0.4, decode_s=0.35)),
    ]
    s = summarize_setting(
        PruneConfig(method="norm", retention=0.5),
        results,
        unpruned_texts=["Hello world", "abce"],
        references=[None, "abcd"],
        gpu_usd_per_s=0.002,
    )
    assert s.label == "norm@0.5" and s.pages == 2
    assert s.agreement == pytest.approx(1 - (0 + 1 / 4) / 2)  # page 2: one edit in four characters
    assert s.accuracy == 1.0  # only page 2 has a reference, and it matches
    assert s.kept_share == pytest.approx(200 / 400)
    assert s.prefill_s_per_page == pytest.approx(0.3)
    assert s.gpu_s_per_page == pytest.approx(1.0)  # 0.25 + 0 + prefill + decode = 1.0 on both pages
    assert s.usd_per_1k_pages == pytest.approx(2.0)


def test_summarize_without_references_has_no_accuracy():
    s = summarize_setting(UNPRUNED, [PageResult("x", usage())], ["x"], [None], gpu_usd_per_s=1.0)
    assert s.accuracy is None and s.agreement == 1.0 and s.kept_share == 1.0


def test_summarize_rejects_a_setting_that_missed_pages():
    with pytest.raises(ValueError):
        summarize_setting(UNPRUNED, [PageResult("x", usage())], ["x", "y"], [None, None], gpu_usd_per_s=1.0)


def test_recommend_cheapest_meeting_target():
    results = [
        result("none", 3.0, 1.0),
        result("a@0.5", 1.0, 0.95),
        result("b@0.7", 2.0, 0.995),
        result("c@0.9", 2.5, 0.999),
    ]
    rec = recommend(results, metric="agreement", target=0.99)
    assert rec.setting.label == "b@0.7" and "cheapest" in rec.reason
    assert recommend(results, metric="agreement", target=0.0).setting.label == "a@0.5"
    assert recommend(results, metric="agreement", target=1.0).setting.label == "none"


def test_recommend_impossible_target_says_none():
    results = [result("none", 3.0, 1.0), result("a@0.5", 1.0, 0.95)]
    rec = recommend(results, metric="agreement", target=1.01)
    assert rec.setting is None and "best is none at 1.0000" in rec.reason


def test_recommend_accuracy_needs_references():
    rec = recommend([result("none", 1.0, 1.0)], metric="accuracy", target=0.5)
    assert rec.setting is None and "no accuracy measured" in rec.reason
    results = [result("none", 3.0, 1.0, accuracy=0.9), result("a@0.5", 1.0, 0.95, accuracy=0.7)]
    assert recommend(results, metric="accuracy", target=0.8).setting.label == "none"


def test_recommend_breaks_cost_ties_by_score_then_tokens():
    results = [
        result("a@0.5", 1.0, 0.991, kept_share=0.5),
        result("b@0.5", 1.0, 0.999, kept_share=0.9),
        result("c@0.5", 1.0, 0.999, kept_share=0.6),
    ]
    assert recommend(results, metric="agreement", target=0.99).setting.label == "c@0.5"


def test_run_sweep_batches_pages_and_scores_against_the_first_setting():
    pages = [EvalPage(f"p{i}", Image.new("RGB", (8, 8), (i, i, i)), f"page {i}") for i in range(5)]
    calls = []

    def runner(images, settings):
        # Text = the page's shade, truncated to nothing at low retention: a deterministic stand-in whose
        # expected scores are known, to check run_sweep's batching and bookkeeping alone.
        calls.append((len(images), [setting_label(c) for c in settings]))
        return [
            [
                PageResult(
                    f"page {img.getpixel((0, 0))[0]}" if cfg.retention > 0.5 else "",
                    usage(kept=round(100 * cfg.retention)),
                )
                for img in images
            ]
            for cfg in settings
        ]

    settings = [
        UNPRUNED,
        PruneConfig(method="norm", retention=0.9),
        PruneConfig(method="norm", retention=0.3),
    ]
    out = run_sweep(pages, settings, runner, gpu_usd_per_s=0.001, batch_size=2)
    assert [n for n, _ in calls] == [2, 2, 1]
    # Each batch starts with another setting, and results still land with the setting that made them.
    assert [order[0] for _, order in calls] == ["none", "norm@0.9", "norm@0.3"]
    assert [r.label for r in out] == ["none", "norm@0.9", "norm@0.3"]
    assert [r.agreement for r in out] == [1.0, 1.0, 0.0]
    assert [r.accuracy for r in out] == [1.0, 1.0, 0.0]
    assert out[2].kept_share == pytest.approx(0.3)


def test_run_sweep_requires_the_unpruned_reference_first():
    page = EvalPage("p", Image.new("RGB", (8, 8)), None)
    with pytest.raises(ValueError, match="unpruned"):
        run_sweep([page], [PruneConfig(method="norm", retention=0.5)], lambda i, s: [], gpu_usd_per_s=1.0)
