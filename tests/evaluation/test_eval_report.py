from rtprune.evaluation.report import markdown_table, plot_tradeoff, read_csv, write_csv
from rtprune.evaluation.sweep import SettingResult, recommend


def results():
    def r(label, usd, agreement, accuracy):
        return SettingResult(
            label=label,
            method=label.split("@")[0],
            retention=0.7,
            dynamic=False,
            pages=3,
            accuracy=accuracy,
            agreement=agreement,
            kept_share=0.7,
            prefill_s_per_page=0.01,
            gpu_s_per_page=0.5,
            usd_per_1k_pages=usd,
        )

    return [r("none", 0.3, 1.0, None), r("rtprune@0.7", 0.2, 0.995, None), r("norm@0.5", 0.1, 0.9, None)]


def test_csv_round_trip(tmp_path):
    rows = results()
    assert read_csv(write_csv(rows, tmp_path / "sweep.csv")) == rows


def test_markdown_sorted_by_cost_with_recommendation():
    rows = results()
    text = markdown_table(rows, recommend(rows, metric="agreement", target=0.99))
    body = [line for line in text.splitlines() if line.startswith("| ") and "setting" not in line]
    assert [line.split("|")[1].strip() for line in body] == [
        "norm@0.5",
        "rtprune@0.7 **(recommended)**",
        "none",
    ]
    assert "| n/a | 0.9950 | 70.0% |" in text
    assert "Recommended (target agreement >= 0.99): rtprune@0.7 is the cheapest" in text
    none_text = markdown_table(rows, recommend(rows, metric="agreement", target=2.0))
    assert "No recommendation" in none_text and "(recommended)" not in none_text


def test_plot_is_a_png(tmp_path):
    rows = results()
    path = plot_tradeoff(rows, tmp_path / "sweep.png", recommend(rows, metric="agreement", target=0.99))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
