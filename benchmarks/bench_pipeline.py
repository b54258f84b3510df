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


def bench_plain_render(blobs: list[bytes], dpi: int, fmt: str = "png") -> tuple[float, list]:
    """A plain PyMuPDF loop: open, rasterize each page, PNG-encode (png) or keep the RGB samples (raw)."""
    import pymupdf

    images, start = [], time.perf_counter()
    for blob in blobs:
        with pymupdf.open(stream=blob, filetype="pdf") as doc:
            for page in doc:
                pix = page.get_pixmap(dpi=dpi)
                images.append(pix.tobytes("png") if fmt == "png" else bytes(pix.samples))
    return len(images) / (time.perf_counter() - start), images


def bench_render_stage(folder: Path, cfg) -> float:
    import pyarrow as pa

    from pipeline.driver.run import run_stamp
    from pipeline.stages.render import RenderStage
    from pipeline.store.listing import list_documents

    docs = list_documents(str(folder), cfg.storage)
    stage = RenderStage(cfg, run_stamp(cfg))
    stage(pa.Table.from_pylist([vars(docs[0])]))  # start the render child outside the timing
    start, pages = time.perf_counter(), 0
    for doc in docs:
        pages += stage(pa.Table.from_pylist([vars(doc)])).num_rows
    return pages / (time.perf_counter() - start)


def bench_bare_ocr(pngs: list[bytes], cfg) -> tuple[float, float]:
    """The engine alone: same pages, cost-sorted batches of ocr_sub_batch_size, no Ray."""
    import io

    import torch
    from PIL import Image

    from pipeline.stages.ocr import cost_sorted_batches
    from rtprune.engines.hf.engine import OcrEngine

    # Ray gives an actor as many intra-op threads as its whole CPUs (at least 1): the same for the loop.
    torch.set_num_threads(max(1, int(cfg.pools.ocr_num_cpus)))
    engine = OcrEngine(cfg.engine)
    images = [Image.open(io.BytesIO(p)).convert("RGB") for p in pngs]
    engine.ocr(images[:1])  # warm-up, as the pipeline's actor is warm after its first batch
    costs = [engine.visual_tokens(*im.size) for im in images]
    start, gpu_s = time.perf_counter(), 0.0
    for batch in cost_sorted_batches(costs, cfg.pools.ocr_sub_batch_size):
        gpu_s += sum(r.usage.gpu_s for r in engine.ocr([images[i] for i in batch]))
    return len(images) / (time.perf_counter() - start), gpu_s / len(images)


def bench_pipeline(cfg) -> tuple[float, float, float]:
    """(pages/s over the whole run incl. actor start and model load, pages/s after the first output batch:
    the steady state a long run sees). Same streaming + commit path as run_pipeline."""
    from pipeline.cost.pricing import load_pricing
    from pipeline.driver.commit import Committer
    from pipeline.driver.run import build_dataset, engine_config_hash, plan, run_stamp
    from pipeline.store.output import Output

    out = Output.open(cfg.output, cfg.storage)
    todo, _, seq = plan(cfg, out)
    committer = Committer(out, cfg.run_id, engine_config_hash(cfg.engine), load_pricing(), 1, 60.0, seq)
    arrivals: list[tuple[float, int, float]] = []  # (arrival time, rows, engine seconds of the batch)
    start = time.perf_counter()
    for batch in build_dataset(cfg, todo, run_stamp(cfg)).iter_batches(
        batch_size=None, batch_format="pyarrow"
    ):
        committer.add(batch)
        engine_s = sum(sum(batch[c].to_pylist()) for c in ("encode_s", "prune_s", "prefill_s", "decode_s"))
        arrivals.append((time.perf_counter(), batch.num_rows, engine_s))
    committer.finish()
    end = time.perf_counter()
    pages = sum(n for _, n, _ in arrivals)
    gpu_s = sum(s for _, _, s in arrivals)
    # Steady state starts when the warm OCR actor began its first batch: the first arrival minus that
    # batch's engine time (conservative: any delay in delivering it counts against the pipeline).
    ocr_start = arrivals[0][0] - arrivals[0][2]
    steady = pages / (end - ocr_start)
    return pages / (end - start), steady, gpu_s / pages


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
    cfg = PipelineConfig.model_validate(
        {
            "input": str(tmp / "in"),
            "output": str(tmp / "out"),
            "commit_documents": 1,
            "engine": {"model": args.model, "mode": args.mode, "max_new_tokens": args.max_new_tokens},
            # One attempt per page on both sides: the random model's pages all end at the cap, and retries
            # would double the pipeline's work next to the bare loop's.
            "page_policy": {"retry_on": []},
            "pools": {
                "render_actors": 1,
                "render_num_cpus": 0.5,
                "ocr_num_cpus": 0.5,
                "ocr_num_gpus": 1,
                "ocr_batch_size": args.batch * 2,
                "ocr_sub_batch_size": args.batch,
            },
        }
    )
    plain_raw, raws = bench_plain_render(blobs, cfg.render.dpi, "raw")
    plain_render, pngs = bench_plain_render(blobs, cfg.render.dpi)
    stage_render = bench_render_stage(tmp / "in", cfg)
    bare1, bare1_gpu = bench_bare_ocr(pngs, cfg)
    ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    whole, steady, pipe_gpu = bench_pipeline(cfg)
    ray.shutdown()
    # The machine is shared: a second bare run after the pipeline brackets it in time.
    bare2, bare2_gpu = bench_bare_ocr(pngs, cfg)
    bare = (bare1 + bare2) / 2
    n = len(pngs)
    print(
        f"pages: {n} ({args.docs} docs x {args.pages}), model {args.model} mode {args.mode}, "
        f"max_new_tokens {args.max_new_tokens}, batch {args.batch}"
    )
    print(
        f"render  plain loop, raw RGB  {plain_raw:8.2f} pages/s  {sum(map(len, raws)) / n / 1e6:.2f} MB/page"
    )
    print(
        f"render  plain loop, PNG      {plain_render:8.2f} pages/s  {sum(map(len, pngs)) / n / 1e6:.2f} MB/page"
    )
    print(
        f"render  RenderStage          {stage_render:8.2f} pages/s  ratio {stage_render / plain_render:.2f}"
    )
    print(
        f"ocr     bare engine loop     {bare:8.2f} pages/s  (runs before/after: {bare1:.2f}, {bare2:.2f}; "
        f"engine s/page {bare1_gpu:.2f}, {bare2_gpu:.2f})"
    )
    print(
        f"ocr     pipeline, whole run  {whole:8.2f} pages/s  ratio {whole / bare:.2f}  (engine s/page {pipe_gpu:.2f})"
    )
    print(
        f"ocr     pipeline, steady     {steady:8.2f} pages/s  ratio {steady / bare:.2f} (target >= 0.90; "
        "from the first OCR call)"
    )


if __name__ == "__main__":
    main()
