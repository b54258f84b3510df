"""What the viewer's page images cost the export, per page, by kind of page and image width:

    PYTHONPATH=. python benchmarks/bench_page_images.py --pages 20

Renders PDFs with pipeline.export.page_images.preview_pdf (what the export's isolated children run) and
prints, per kind of page and width, the CPU milliseconds per page (this process's CPU time, best of
--repeats) and the JPEG sizes. Kinds: born-digital text pages (pipeline.samples.sample_pdf_bytes), and
scanned pages (a page-filling photo of noise: the worst case for JPEG, an upper bound for real scans).
"""

from __future__ import annotations

import argparse
import io
import time

from pipeline.config import RenderConfig
from pipeline.export.page_images import preview_pdf
from pipeline.samples import sample_pdf_bytes


def scanned_pdf_bytes(pages: int) -> bytes:
    """Pages that are one 150 dpi A4 image each, of noise (JPEG's worst case)."""
    import pymupdf
    from PIL import Image

    buf = io.BytesIO()
    Image.effect_noise((1240, 1754), 60).convert("RGB").save(buf, "JPEG", quality=85)
    doc = pymupdf.open()
    for _ in range(pages):
        page = doc.new_page(width=595, height=842)
        page.insert_image(page.rect, stream=buf.getvalue())
    return doc.tobytes()


def measure(data: bytes, width_px: int, repeats: int) -> tuple[float, list[int]]:
    """Best-of-repeats CPU ms per page and the JPEG sizes of the last render."""
    cfg = RenderConfig()
    best, sizes = float("inf"), []
    for _ in range(repeats):
        start = time.process_time()
        outcome = preview_pdf(data, cfg, width_px)
        best = min(best, (time.process_time() - start) / len(outcome.pages))
        sizes = [len(p.data) for p in outcome.pages]
    return best * 1000, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--widths", type=int, nargs="+", default=[480, 960, 1440])
    args = parser.parse_args()
    kinds = {"text": sample_pdf_bytes(args.pages), "scan": scanned_pdf_bytes(args.pages)}
    print(f"{'kind':6} {'width px':>8} {'CPU ms/page':>12} {'JPEG kB min':>12} {'JPEG kB max':>12}")
    for kind, data in kinds.items():
        for width in args.widths:
            ms, sizes = measure(data, width, args.repeats)
            print(f"{kind:6} {width:8d} {ms:12.1f} {min(sizes) / 1e3:12.0f} {max(sizes) / 1e3:12.0f}")


if __name__ == "__main__":
    main()
