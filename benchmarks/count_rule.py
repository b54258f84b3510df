"""What the pixel count rule (PruneConfig.count_from_pixels) changes against the content rule, one run.

    python -m benchmarks.count_rule --fixture ../shared/fixtures/deepseek-ocr-v1-tiny --pages 8

The transformers engine runs each page under both rules (fixture weights, fp32, CPU) and prints per config:
mean kept visual tokens under each rule, pages whose kept sets are identical, mean Jaccard overlap of the
kept sets, and pages whose first --tokens greedy tokens agree. Pages: synthetic text pages
(benchmarks/synthetic_pages.py) cut from their grey square, portrait and landscape; landscape pages put
whole padding rows in the global view, which the content rule collapses to one newline each.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile

import numpy as np
from PIL import Image

from benchmarks.synthetic_pages import PAD_GREY, render_text_page
from rtprune.api import PruneConfig

CONFIGS = {"0.84": PruneConfig(retention=0.84), "0.6": PruneConfig(retention=0.6),
           "dynamic": PruneConfig(retention=0.84, dynamic=True)}  # fmt: skip


def text_pages(n: int) -> list[Image.Image]:
    """n synthetic pages, alternating portrait (A4) and landscape, without their grey padding."""
    pages = []
    for seed in range(n):
        square = render_text_page(seed, aspect=0.707 if seed % 2 == 0 else 1.414)
        rows, cols = np.nonzero(square != PAD_GREY)
        page = square[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        pages.append(Image.fromarray(page).convert("RGB"))
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", required=True, help="a v1 checkpoint folder (config.json + weights)")
    parser.add_argument("--mode", default="large")
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=16, help="greedy tokens compared per page")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from rtprune.engines.contract import EngineConfig
    from rtprune.engines.hf.engine import OcrEngine
    from rtprune.engines.vllm.plugin.fixture import prepare_model_dir
    from rtprune.models.deepseek_v1 import DeepseekOcrV1Backend

    folder = prepare_model_dir(args.fixture, tempfile.mkdtemp())
    prompt = "<image>\nFree OCR."
    backend = DeepseekOcrV1Backend.from_pretrained(
        str(folder), mode=args.mode, prompt=prompt, tokenizer=AutoTokenizer.from_pretrained(str(folder))
    )
    engine = OcrEngine(
        EngineConfig(mode=args.mode, prompt=prompt, max_new_tokens=args.tokens), backend=backend
    )
    pages = engine.prepare(text_pages(args.pages))
    features, _ = engine.encode(pages)
    print(f"mode {args.mode}, {args.pages} pages, {pages[0].layout.n_tokens}+ visual tokens per page")
    print(
        f"{'config':>8} {'kept content':>13} {'kept pixels':>12} {'same set':>9} {'jaccard':>8} {'same greedy':>12}"
    )
    for name, config in CONFIGS.items():
        pixel = dataclasses.replace(config, count_from_pixels=True)
        by_content, _ = engine.prune(pages, features, config)
        by_pixels, _ = engine.prune(pages, features, pixel)
        same, jacc = 0, []
        for a, b in zip(by_content, by_pixels, strict=True):
            sa, sb = set(a.kept_index.tolist()), set(b.kept_index.tolist())
            same += sa == sb
            jacc.append(len(sa & sb) / len(sa | sb))
        greedy = [engine.generate([p]).output_ids[0].tolist() for p in by_content + by_pixels]
        agree = sum(greedy[i] == greedy[i + len(pages)] for i in range(len(pages)))
        kept_c = statistics.mean(p.n_kept for p in by_content)
        kept_p = statistics.mean(p.n_kept for p in by_pixels)
        print(
            f"{name:>8} {kept_c:13.1f} {kept_p:12.1f} {same:>5}/{len(pages):<3} {statistics.mean(jacc):8.3f}"
            f" {agree:>8}/{len(pages):<3}"
        )


if __name__ == "__main__":
    main()
