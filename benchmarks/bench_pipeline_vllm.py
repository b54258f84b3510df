"""The pipeline on the vLLM engine, side by side in one run on this machine (same rendered pages):

  1. a bare vLLM engine loop: the pages, pre-rendered, straight into one warm VllmEngine (no Ray);
  2. the whole Ray pipeline with engine.backend=vllm (list -> render actors -> async vLLM OCR actor -> commit);
  3. the whole Ray pipeline with engine.backend=hf (the transformers engine) on the same model folder.

Throughput is counted the same way everywhere: pages finished after the first finished page, divided by
the time from the first to the last finished page. That leaves out what a long run does not see (Ray and
actor start-up, model load, the first page's latency) and keeps what it does (rendering, moving pages
between stages, the engine's steady state). The goal is pipeline / bare >= 0.9.

Needs vLLM (the CPU build on a machine without a GPU: `bash infra/vllm/install.sh`) and the v1 fixture:

    PYTHONPATH=. .venv-vllm/bin/python benchmarks/bench_pipeline_vllm.py [--docs 16 --pages 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = next(
    (
        c
        for c in (
            b / "shared" / "fixtures" / "deepseek-ocr-v1-tiny" for b in (REPO.parent, REPO.parent.parent)
        )
        if (c / "model.safetensors").is_file()
    ),
    REPO.parent / "shared" / "fixtures" / "deepseek-ocr-v1-tiny",
)
VLLM_CPU_ENV = {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "2"}


def steady_rate(finish_times: list[float], pages: list[int] | None = None) -> float:
    """Pages finished after the first finish event, per second between the first and the last event."""
    pages = pages or [1] * len(finish_times)
    order = sorted(range(len(finish_times)), key=finish_times.__getitem__)
    span = finish_times[order[-1]] - finish_times[order[0]]
    return sum(pages[i] for i in order[1:]) / span if span > 0 else float("nan")


def rendered_pages(blobs: list[bytes], dpi: int) -> list:
    import pymupdf
    from PIL import Image

    images = []
    for blob in blobs:
        with pymupdf.open(stream=blob, filetype="pdf") as doc:
            for page in doc:
                pix = page.get_pixmap(dpi=dpi)
                images.append(Image.frombytes("RGB", (pix.width, pix.height), pix.samples))
    return images


def bench_bare_vllm(images: list, cfg) -> tuple[float, float]:
    """(pages/s, engine busy s/page): every page its own request to one warm engine, at most max_num_seqs
    in flight (what one pipeline actor does), finish times taken as pages complete."""
    from pipeline.stages.ocr_vllm import EngineMeter, build_vllm_engine

    engine = build_vllm_engine(cfg.engine, cfg.pools)
    try:
        meter = EngineMeter(cfg.pools.ocr_vllm.max_num_seqs)

        async def page(image) -> float:
            async with meter.page():
                await engine.ocr_page(image)
            return time.perf_counter()

        async def run_all() -> list[float]:
            await engine.ocr_page(images[0])  # warm-up: the pipeline's actor is warm after its first page
            return list(await asyncio.gather(*(page(im) for im in images)))

        finish = asyncio.run(run_all())
    finally:
        engine.close()
    return steady_rate(finish), meter.clock.busy_s / len(images)


def bench_pipeline(cfg) -> tuple[float, float]:
    """(pages/s from the first to the last OCR output batch at the driver, engine s/page); the same
    streaming + commit path as run_pipeline."""
    from pipeline.cost.pricing import load_pricing
    from pipeline.driver.commit import Committer
    from pipeline.driver.run import build_dataset, engine_config_hash, plan, run_stamp
    from pipeline.store.output import Output

    out = Output.open(cfg.output, cfg.storage)
    todo, _, seq = plan(cfg, out)
    committer = Committer(out, cfg.run_id, engine_config_hash(cfg.engine), load_pricing(), 1, 60.0, seq)
    times, pages, gpu_s = [], [], 0.0
    for batch in build_dataset(cfg, todo, run_stamp(cfg)).iter_batches(
        batch_size=None, batch_format="pyarrow"
    ):
        committer.add(batch)
        times.append(time.perf_counter())
        pages.append(batch.num_rows)
        gpu_s += sum(batch["gpu_s"].to_pylist()) or sum(
            sum(batch[c].to_pylist()) for c in ("encode_s", "prune_s", "prefill_s", "decode_s")
        )
    committer.finish()
    return steady_rate(times, pages), gpu_s / sum(pages)


def config(tmp: Path, name: str, folder: Path, backend: str, args):
    from pipeline.config import PipelineConfig

    return PipelineConfig.model_validate(
        {
            "input": str(tmp / "in"),
            "output": str(tmp / f"out-{name}"),
            "commit_documents": 1,
            "engine": {
                "model": str(folder),
                "backend": backend,
                "mode": args.mode,
                "dtype": "float32",
                "device": "cpu",
                "max_new_tokens": args.max_new_tokens,
            },
            "pools": {
                "render_actors": 1,
                "render_num_cpus": 0.5,
                "ocr_num_cpus": 1,
                "ocr_num_gpus": 1,
                "ocr_batch_size": args.batch,
                "ocr_sub_batch_size": args.batch,
                "ocr_batches_in_flight": args.seqs // args.batch + 2,
                "ocr_vllm": {"kv_cache_gib": 1.0, "max_num_seqs": args.seqs, "enforce_eager": True},
            },
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=16)
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--mode", default="tiny")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4, help="pages per Ray Data batch (hf: per engine call)")
    parser.add_argument(
        "--seqs", type=int, default=16, help="pages in one vLLM engine at once (max_num_seqs)"
    )
    args = parser.parse_args()
    for key, value in VLLM_CPU_ENV.items():
        os.environ.setdefault(key, value)

    import ray

    from pipeline.samples import sample_pdf_bytes
    from rtprune.engines.vllm.plugin.fixture import prepare_model_dir

    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-vllm-"))
    folder = prepare_model_dir(FIXTURE, tmp / "model")
    (tmp / "in").mkdir()
    blobs = [sample_pdf_bytes(args.pages, seed=i) for i in range(args.docs)]
    for i, blob in enumerate(blobs):
        (tmp / "in" / f"doc-{i:03d}.pdf").write_bytes(blob)
    vllm_cfg, hf_cfg = config(tmp, "vllm", folder, "vllm", args), config(tmp, "hf", folder, "hf", args)
    images = rendered_pages(blobs, vllm_cfg.render.dpi)

    bare1, bare1_s = bench_bare_vllm(images, vllm_cfg)
    ray.init(
        address="local",
        num_cpus=4,
        num_gpus=1,
        include_dashboard=False,
        logging_level="WARNING",
        runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO)), **VLLM_CPU_ENV}},
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    pipe_vllm, pipe_vllm_s = bench_pipeline(vllm_cfg)
    pipe_hf, pipe_hf_s = bench_pipeline(hf_cfg)
    ray.shutdown()
    # The machine may be shared: a second bare run after the pipelines brackets them in time.
    bare2, bare2_s = bench_bare_vllm(images, vllm_cfg)
    bare = (bare1 + bare2) / 2

    print(
        f"pages: {len(images)} ({args.docs} docs x {args.pages}), fixture v1 mode {args.mode}, fp32, "
        f"max_new_tokens {args.max_new_tokens}, batch {args.batch}, max_num_seqs {args.seqs}"
    )
    print(
        f"bare vLLM engine loop     {bare:7.2f} pages/s  (before/after: {bare1:.2f}, {bare2:.2f}; "
        f"engine busy s/page {bare1_s:.3f}, {bare2_s:.3f})"
    )
    print(
        f"pipeline, vLLM engine     {pipe_vllm:7.2f} pages/s  ratio to bare {pipe_vllm / bare:.2f} "
        f"(goal >= 0.90; engine s/page {pipe_vllm_s:.3f})"
    )
    print(
        f"pipeline, hf engine       {pipe_hf:7.2f} pages/s  vLLM pipeline / hf pipeline {pipe_vllm / pipe_hf:.2f} "
        f"(engine s/page {pipe_hf_s:.3f})"
    )


if __name__ == "__main__":
    main()
