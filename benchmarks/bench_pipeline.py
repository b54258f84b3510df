"""Pipeline throughput, side by side in one run on this machine:

  1. render: RenderStage (isolated child, PNG, rows) vs a plain PyMuPDF loop over the same documents;
  2. OCR: the whole Ray pipeline (list -> render actors -> OCR actor -> commit) vs a bare loop calling
     the same engine on the same pages (pre-rendered, cost-sorted batches of the same size).

    PYTHONPATH=. python benchmarks/bench_pipeline.py [--docs 12 --pages 4 --max-new-tokens 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _docs(folder: Path, docs: int, pages: int) -> list[bytes]:
    from pipeline.samples import sample_pdf_bytes

    folder.mkdir(parents=True, exist_ok=True)
    blobs = [sample_pdf_bytes(pages, seed=i) for i in range(docs)]
    for i, blob in enumerate(blobs):
        (folder / f"doc-{i:03d}.pdf").write_bytes(blob)
    return blobs


def bench_plain_render(blobs: list[bytes], dpi: int) -> tuple[float, list]:
    """A plain PyMuPDF loop: open, rasterize each page, PNG-encode (what the OCR stage receives)."""
    import pymupdf

    images, start = [], time.perf_counter()
    for blob in blobs:
        with pymupdf.open(stream=blob, filetype="pdf") as doc:
            for page in doc:
                images.append(page.get_pixmap(dpi=dpi).tobytes("png"))
    return len(images) / (time.perf_counter() - start), images


def bench_render_stage(folder: Path, cfg) -> float:
    import pyarrow as pa

    from pipeline.run import run_stamp
    from pipeline.stages import RenderStage
    from pipeline.storage import list_documents

    docs = list_documents(str(folder), cfg.storage)
    stage = RenderStage(cfg, run_stamp(cfg))
    stage(pa.Table.from_pylist([vars(docs[0])]))  # start the render child outside the timing
    start, pages = time.perf_counter(), 0
    for doc in docs:
        pages += stage(pa.Table.from_pylist([vars(doc)])).num_rows
    return pages / (time.perf_counter() - start)


def bench_bare_ocr(pngs: list[bytes], cfg) -> float:
    """The engine alone: same pages, cost-sorted batches of ocr_sub_batch_size, no Ray."""
    import io

    from PIL import Image
    from rtprune.engine import OcrEngine

    from pipeline.ocr import cost_sorted_batches

    engine = OcrEngine(cfg.engine)
    images = [Image.open(io.BytesIO(p)).convert("RGB") for p in pngs]
    engine.ocr(images[:1])  # warm-up, as the pipeline's actor is warm after its first batch
    costs = [engine.visual_tokens(*im.size) for im in images]
    start = time.perf_counter()
    for batch in cost_sorted_batches(costs, cfg.pools.ocr_sub_batch_size):
        engine.ocr([images[i] for i in batch])
    return len(images) / (time.perf_counter() - start)


def bench_pipeline(cfg) -> tuple[float, float]:
    """(pages/s over the whole run incl. actor start and model load, pages/s from the first committed
    part to the end: the steady state a long run sees)."""
    import logging

    from pipeline.run import run_pipeline

    stamps: list[float] = []
    handler = logging.Handler()
    handler.emit = lambda record: stamps.append(time.perf_counter())  # type: ignore[method-assign]
    logging.getLogger("pipeline").addHandler(handler)
    logging.getLogger("pipeline").setLevel(logging.INFO)
    start = time.perf_counter()
    summary = run_pipeline(cfg)
    end = time.perf_counter()
    pages = summary.pages_ok + summary.pages_failed
    commits = stamps[1:]  # the first log line is the plan, the rest are commits
    per_part = pages / max(1, len(commits))
    steady = (pages - per_part) / (commits[-1] - commits[0]) if len(commits) > 1 else float("nan")
    return pages / (end - start), steady


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=12)
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--model", default="tiny-random-v1")
    parser.add_argument("--mode", default="tiny")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4, help="pages per engine call (both sides)")
    args = parser.parse_args()

    import ray

    from pipeline.config import PipelineConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    blobs = _docs(tmp / "in", args.docs, args.pages)
    cfg = PipelineConfig.model_validate({
        "input": str(tmp / "in"), "output": str(tmp / "out"), "commit_documents": 1,
        "engine": {"model": args.model, "mode": args.mode, "max_new_tokens": args.max_new_tokens},
        "pools": {"render_actors": 1, "render_num_cpus": 0.5, "ocr_num_cpus": 0.5, "ocr_num_gpus": 1,
                  "ocr_batch_size": args.batch * 2, "ocr_sub_batch_size": args.batch}})
    plain_render, pngs = bench_plain_render(blobs, cfg.render.dpi)
    stage_render = bench_render_stage(tmp / "in", cfg)
    bare = bench_bare_ocr(pngs, cfg)
    ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    whole, steady = bench_pipeline(cfg)
    ray.shutdown()
    n = len(pngs)
    print(f"pages: {n} ({args.docs} docs x {args.pages}), model {args.model} mode {args.mode}, "
          f"max_new_tokens {args.max_new_tokens}, batch {args.batch}")
    print(f"render  plain PyMuPDF loop   {plain_render:8.2f} pages/s")
    print(f"render  RenderStage          {stage_render:8.2f} pages/s  ratio {stage_render / plain_render:.2f}")
    print(f"ocr     bare engine loop     {bare:8.2f} pages/s")
    print(f"ocr     pipeline, whole run  {whole:8.2f} pages/s  ratio {whole / bare:.2f}")
    print(f"ocr     pipeline, steady     {steady:8.2f} pages/s  ratio {steady / bare:.2f} (target >= 0.90)")


if __name__ == "__main__":
    main()
