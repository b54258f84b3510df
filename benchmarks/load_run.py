"""Load run: a few thousand generated pages through the local pipeline with the tiny model, sampling the
memory of every process type, to show throughput and that memory stays flat over a long run.

    PYTHONPATH=. python benchmarks/load_run.py --pages 3000 [--pages-per-doc 10] [--json out.json]

Prints pages/s and, per process type (driver, render actors, render children, OCR actors, raylet, GCS,
other Ray workers), the peak RSS of one process, the peak of the type's total, and the type's mean total
in the first and last quarter of the run; "flat" means the last quarter is within 20% (or 100 MB) of the
first. The pages are synthetic text pages and the model has random weights: the figures measure the
pipeline's machinery on this machine, not OCR quality or GPU speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).absolute().parents[1]
# (process type, substring of its command line); first match wins, the driver is matched by pid.
PROCESS_TYPES = [
    ("render_actor", "RenderStage"),
    ("ocr_actor", "OcrStage"),
    ("render_child", "multiprocessing"),
    ("raylet", "raylet"),
    ("gcs", "gcs_server"),
]
FLAT_RATIO, FLAT_SLACK_MB = 1.2, 100.0


def write_corpus(folder: Path, pages: int, pages_per_doc: int) -> int:
    """Text PDFs of pages_per_doc pages each, `pages` pages in all; returns the number of documents."""
    import pymupdf

    folder.mkdir(parents=True, exist_ok=True)
    docs = (pages + pages_per_doc - 1) // pages_per_doc
    for d in range(docs):
        doc = pymupdf.open()
        for p in range(min(pages_per_doc, pages - d * pages_per_doc)):
            page = doc.new_page()
            for line in range(20):
                page.insert_text(
                    (72, 72 + 30 * line), f"document {d} page {p} line {line}: load run", fontsize=12
                )
        doc.save(str(folder / f"doc-{d:05d}.pdf"), garbage=3, deflate=True)
        doc.close()
    return docs


def classify(proc: psutil.Process, driver_pid: int) -> str:
    if proc.pid == driver_pid:
        return "driver"
    cmdline = " ".join(proc.cmdline())
    for kind, marker in PROCESS_TYPES:
        if marker in cmdline:
            return kind
    return "other_ray"


class MemorySampler:
    """Every interval_s: RSS of the driver and each descendant, grouped by process type, and the rows
    committed so far (from the ledger), so the report can leave out start-up."""

    def __init__(self, interval_s: float, ledger: Path) -> None:
        self.samples: list[tuple[float, dict[str, list[float]]]] = []
        self.committed: list[tuple[float, int]] = []
        self._ledger = ledger
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def sample(self) -> None:
        me = psutil.Process()
        by_type: dict[str, list[float]] = {}
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):  # a process may exit while we look at it
                by_type.setdefault(classify(proc, me.pid), []).append(proc.memory_info().rss / 2**20)
        now = time.monotonic()
        self.samples.append((now, by_type))
        rows = 0
        for record in self._ledger.glob("*/*.json"):
            with contextlib.suppress(OSError, ValueError):  # a record being renamed into place
                rows += json.loads(record.read_text())["rows"]
        self.committed.append((now, rows))

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()  # the last commits land just before the run returns


def steady(sampler: MemorySampler) -> tuple[list[tuple[float, dict[str, list[float]]]], float]:
    """Samples from the first commit on (actors loaded, pages flowing), and pages/s over that window."""
    first = next((i for i, (_, rows) in enumerate(sampler.committed) if rows), len(sampler.committed) - 1)
    (t0, rows0), (t1, rows1) = sampler.committed[first], sampler.committed[-1]
    return sampler.samples[first:], (rows1 - rows0) / (t1 - t0) if t1 > t0 else 0.0


def memory_report(samples: list[tuple[float, dict[str, list[float]]]]) -> dict[str, dict[str, Any]]:
    """Per type: peak single-process RSS, peak total, mean total in the first and last quarter, flat?"""
    kinds = sorted({k for _, by_type in samples for k in by_type})
    report = {}
    for kind in kinds:
        # Quarters of the type's own lifetime: render actors are gone before the OCR stage drains.
        alive = [by_type[kind] for _, by_type in samples if by_type.get(kind)]
        totals, singles = [sum(rss) for rss in alive], [max(rss) for rss in alive]
        quarter = max(1, len(totals) // 4)
        first, last = statistics.mean(totals[:quarter]), statistics.mean(totals[-quarter:])
        flat = last <= first * FLAT_RATIO or last - first <= FLAT_SLACK_MB
        report[kind] = {
            "peak_process_mb": max(singles),
            "peak_total_mb": max(totals),
            "first_quarter_mb": first,
            "last_quarter_mb": last,
            "flat": flat,
        }
    return report


def pipeline_config(input_dir: Path, output_dir: Path) -> Any:
    from pipeline.config import PipelineConfig

    return PipelineConfig.model_validate(
        {
            "input": str(input_dir),
            "output": str(output_dir),
            "engine": {"model": "tiny-random-v1", "mode": "tiny", "max_new_tokens": 16},
            "pools": {
                "render_actors": 2,
                "render_num_cpus": 0.5,
                "ocr_min_actors": 2,
                "ocr_max_actors": 2,
                "ocr_num_gpus": 1.0,
                "ocr_num_cpus": 0.5,
                "ocr_batch_size": 16,
                "ocr_sub_batch_size": 8,
            },
            "commit_documents": 8,
            "node_sample_interval_s": 2.0,
        }
    )


def run(pages: int, pages_per_doc: int, interval_s: float, workdir: Path) -> dict[str, Any]:
    import ray
    from ray.data import DataContext

    from pipeline.driver.run import run_pipeline
    from pipeline.store.read import read_committed

    docs = write_corpus(workdir / "in", pages, pages_per_doc)
    ray.init(
        address="local",
        num_cpus=8,
        num_gpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}},
    )
    DataContext.get_current().enable_progress_bars = False
    try:
        with MemorySampler(interval_s, workdir / "out" / "_ledger") as sampler:
            start = time.monotonic()
            summary = run_pipeline(pipeline_config(workdir / "in", workdir / "out"))
            wall_s = time.monotonic() - start
    finally:
        ray.shutdown()
    table = read_committed(str(workdir / "out"))
    ok = table.column("status").to_pylist().count("ok")
    window, steady_pages_per_s = steady(sampler)
    return {
        "pages": pages,
        "documents": docs,
        "rows": table.num_rows,
        "pages_ok": ok,
        "wall_s": wall_s,
        "pages_per_s": table.num_rows / wall_s,
        "steady_pages_per_s": steady_pages_per_s,
        "summary_wall_s": summary.wall_s,
        "samples": len(window),
        # Every process type seen during the run; on a fast run rendering can finish before the first
        # commit, so its processes appear only outside the steady window that flatness is judged on.
        "seen": sorted({kind for _, by_type in sampler.samples for kind in by_type}),
        "memory": memory_report(window),
    }


def print_report(result: dict[str, Any]) -> None:
    print(
        f"pages: {result['pages']} in {result['documents']} documents; rows {result['rows']}, ok {result['pages_ok']}"
    )
    print(
        f"wall: {result['wall_s']:.1f} s  ->  {result['pages_per_s']:.2f} pages/s overall, "
        f"{result['steady_pages_per_s']:.2f} pages/s from the first commit on"
    )
    print(f"memory over {result['samples']} samples from the first commit on:")
    print(
        f"{'process type':<14}{'peak 1 proc MB':>16}{'peak total MB':>15}{'1st quarter':>13}{'last quarter':>14}  flat"
    )
    for kind, m in result["memory"].items():
        print(
            f"{kind:<14}{m['peak_process_mb']:>16.0f}{m['peak_total_mb']:>15.0f}{m['first_quarter_mb']:>13.0f}"
            f"{m['last_quarter_mb']:>14.0f}  {'yes' if m['flat'] else 'NO'}"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--pages-per-doc", type=int, default=10)
    parser.add_argument("--interval-s", type=float, default=1.0, help="memory sampling interval")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="load-run-") as tmp:
        result = run(args.pages, args.pages_per_doc, args.interval_s, Path(tmp))
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("PYTHONPATH", str(REPO_ROOT))
    main()
