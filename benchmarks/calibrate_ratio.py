"""Calibrate the dynamic-ratio references so synthetic text pages average the configured retention.

    python -m benchmarks.calibrate_ratio --pages 40

Our formula (rtprune/ratio.py) is r = clip(retention + wd (T - T_ref) - wr (R - R_ref), min, max).
Fitting: T_ref and R_ref are the means of textual density T and redundancy R over a calibration set of
synthetic v1-Large text pages (benchmarks/synthetic_pages.py: mixed paper sizes, one or two columns, fill
from a third to a full page). A held-out set (other seeds) then checks the mean retention with the fitted
references, and with the defaults in PruneConfig. The redundancy reference is only as good as the toy
encoder's features: with real DeepSeek-OCR embeddings, rerun the fit on encoder outputs.
"""

from __future__ import annotations

import argparse
import random
import statistics
from dataclasses import replace

from benchmarks.synthetic_pages import text_page
from rtprune import PruneConfig
from rtprune.ratio import dynamic_retention, redundancy, text_density

ASPECTS = (0.707, 0.707, 0.773, 0.707, 1.414)  # A4 and Letter portrait, some landscape pages


def measure(seed: int, config: PruneConfig) -> tuple[float, float]:
    """(T, R) of one synthetic page drawn from `seed`."""
    rng = random.Random(seed)
    page = text_page(seed, aspect=rng.choice(ASPECTS), fill=rng.uniform(0.35, 1.0))
    density = text_density(page.image, config, page.token_boxes)
    return density, redundancy(page.tokens[~page.protected], config.redundancy_anchors)


def summary(values: list[float]) -> str:
    return (
        f"mean {statistics.fmean(values):.3f}  sd {statistics.pstdev(values):.3f}  "
        f"min {min(values):.3f}  max {max(values):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=40, help="pages in the fit set and in the held-out set")
    args = parser.parse_args()
    config = PruneConfig(dynamic=True)
    fit = [measure(seed, config) for seed in range(args.pages)]
    held = [measure(10_000 + seed, config) for seed in range(args.pages)]
    t_ref = statistics.fmean(t for t, _ in fit)
    r_ref = statistics.fmean(r for _, r in fit)
    fitted = replace(config, density_ref=round(t_ref, 3), redundancy_ref=round(r_ref, 3))
    print(f"fit set ({args.pages} pages): T {summary([t for t, _ in fit])}")
    print(f"                    R {summary([r for _, r in fit])}")
    for name, cfg in (("fitted", fitted), ("PruneConfig defaults", config)):
        ratios = [dynamic_retention(cfg, r, t) for t, r in held]
        print(
            f"held-out retention, {name} (T_ref {cfg.density_ref}, R_ref {cfg.redundancy_ref}): "
            f"{summary(ratios)}"
        )
    print(f"\nsuggested: density_ref={fitted.density_ref}, redundancy_ref={fitted.redundancy_ref}")


if __name__ == "__main__":
    main()
