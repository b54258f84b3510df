"""Routing off and on, side by side, over one mixed corpus through the whole pipeline (embedded local Ray,
the tiny random model): pages/s, GPU seconds, $ per 1,000 pages, and what the router costs the render stage.

    python -m benchmarks.bench_routing [--pages 40 --born-share 0.7 --pages-per-doc 4 --max-new-tokens 16]

The corpus: born-digital documents (pipeline.samples.sample_pdf_bytes: headings, prose, a table) for
--born-share of the pages, scanned ones (scanned_pdf_bytes: the same pages as grey JPEGs, no text layer) for
the rest. Each setting runs on a fresh output folder over the same input, one after the other on the same
Ray, routing on first (the second run finds Ray's workers warm). With the tiny model on CPU, "GPU seconds" are the engine's busy seconds on the CPU, so the absolute
numbers show the shape, not a GPU's prices; the ratios between the two columns are the result.

Pages/s twice: over the whole run (actor start and model load in: most of a 40-page run), and from the
first output batch on (the actors up, what a long run sees).

Render-stage cost of the router: route_s (reading each page's text layer: features, decision, Markdown,
measured in the render child) summed, against the render stage's seconds (render_s summed) with routing
off: what routing adds to the stage that existed. The stage's seconds with routing on are printed beside
(routed pages skip the pixmap and PNG). OCR-stage pass-through: the static-batch OCR stage's own time for a
batch of routed rows (rows in and out, no engine call), per row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def write_corpus(folder: Path, pages: int, born_share: float, per_doc: int) -> tuple[int, int]:
    """(born-digital pages, scanned pages) written to folder in documents of per_doc pages."""
    from pipeline.samples import sample_pdf_bytes, scanned_pdf_bytes

    folder.mkdir(parents=True, exist_ok=True)
    born = round(pages * born_share)
    for kind, total, make in (("born", born, sample_pdf_bytes), ("scan", pages - born, scanned_pdf_bytes)):
        for i, start in enumerate(range(0, total, per_doc)):
            (folder / f"{kind}-{i:03d}.pdf").write_bytes(make(min(per_doc, total - start), seed=i))
    return born, pages - born


def config(root: Path, mode: str, max_new_tokens: int):
    from pipeline.config import PipelineConfig

    return PipelineConfig.model_validate(
        {
            "input": str(root / "in"),
            "output": str(root / f"out-{mode}"),
            "run_id": f"bench-{mode}",
            "routing": {"mode": mode},
            "engine": {"model": "tiny-random-v1", "mode": "tiny", "max_new_tokens": max_new_tokens},
            # One attempt per page in both runs: the random model ends every page at the cap, and retries
            # would double the OCR work without telling anything about routing.
            "page_policy": {"retry_on": []},
            "pools": {
                "render_actors": 1,
                "render_num_cpus": 0.5,
                "ocr_num_gpus": 1,
                "ocr_num_cpus": 1,
                "ocr_batch_size": 8,
                "ocr_sub_batch_size": 4,
            },
        }
    )


def arrivals_recorder():  # -> a ConsoleProgress that also keeps (time, rows) of every output batch
    import io

    from pipeline.driver.console import ConsoleProgress

    class Arrivals(ConsoleProgress):
        def __init__(self) -> None:
            super().__init__(io.StringIO(), tty=False)
            self.times: list[tuple[float, int]] = []

        def observe(self, batch, documents_done: int) -> None:
            self.times.append((time.perf_counter(), batch.num_rows))
            super().observe(batch, documents_done)

    return Arrivals()


def run(cfg) -> dict:
    """One pipeline run and its committed rows' totals."""
    import pyarrow.compute as pc

    from pipeline.driver.run import run_pipeline
    from pipeline.store.read import read_committed

    arrivals = arrivals_recorder()
    summary = run_pipeline(cfg, arrivals)
    end = time.perf_counter()
    table = read_committed(cfg.output)
    (first, first_rows), pages = arrivals.times[0], sum(n for _, n in arrivals.times)

    def total(column: str) -> float:
        return float(pc.sum(table[column]).as_py() or 0)

    return {
        "summary": summary,
        "pages_per_s": summary.pages_ok / summary.wall_s,
        # From the first output batch on: the actors are up and the model loaded (what a long run sees).
        "steady_pages_per_s": (pages - first_rows) / (end - first) if end > first else float("nan"),
        "render_s": total("render_s"),
        "route_s": total("route_s"),
        "routed": int(pc.sum(pc.equal(table["route"], "text_layer")).as_py() or 0),
    }


def pass_through_us(root: Path) -> float:
    """Microseconds per routed row through the static-batch OCR stage's code (no engine call)."""
    import pyarrow as pa

    from pipeline.config import PagePolicy, RenderConfig, StorageConfig
    from pipeline.schema import PAGES_SCHEMA
    from pipeline.stages.ocr import ocr_pages
    from pipeline.stages.render import render_document
    from pipeline.stages.routed_render import render_routed_pdf
    from pipeline.stages.rows import RENDERED_SCHEMA, RunStamp, from_batch, to_table
    from rtprune.engines.contract import EngineIdentity

    class InProcess:
        def render(self, data: bytes):
            return render_routed_pdf(data, RenderConfig(), config(root, "text_layer", 1).routing)

    path = sorted((root / "in").glob("born-*.pdf"))[0]
    doc = {"doc_id": "d", "uri": str(path), "source_uri": str(path), "content_hash": "c", "size_bytes": 1}
    stamp = RunStamp("r", EngineIdentity("m", "tiny", "none", "h"))
    rows = render_document(doc, InProcess(), StorageConfig(), stamp, RenderConfig()) * 64
    batch = to_table(rows, RENDERED_SCHEMA)

    class NoEngine:  # the stage never calls the engine for a routed row
        identity = stamp.identity

        def ocr(self, images, **kw):
            raise AssertionError("a routed row reached the engine")

    start = time.perf_counter()
    for _ in range(10):
        out = to_table(ocr_pages(NoEngine(), from_batch(batch), 4, (), policy=PagePolicy()), PAGES_SCHEMA)
    assert isinstance(out, pa.Table) and out.num_rows == len(rows)
    return (time.perf_counter() - start) / (10 * len(rows)) * 1e6


def report(off: dict, on: dict, born: int, scanned: int, pass_us: float) -> None:
    s_off, s_on = off["summary"], on["summary"]
    print(f"corpus: {born + scanned} pages ({born} born-digital, {scanned} scanned)")
    print(f"{'':34}{'routing off':>14}{'routing on':>14}{'on / off':>10}")

    def line(name: str, a: float, b: float, fmt: str = "{:.3f}") -> None:
        ratio = f"{b / a:.2f}" if a else "n/a"
        print(f"{name:34}{fmt.format(a):>14}{fmt.format(b):>14}{ratio:>10}")

    line("pages routed to the text layer", off["routed"], on["routed"], "{:.0f}")
    line("pages through the OCR engine", s_off.pages_ocr, s_on.pages_ocr, "{:.0f}")
    line("visual tokens (engine work, load-free)", s_off.visual_tokens, s_on.visual_tokens, "{:.0f}")
    line("pages/s (whole run, model load in)", off["pages_per_s"], on["pages_per_s"])
    line("pages/s (after the first batch out)", off["steady_pages_per_s"], on["steady_pages_per_s"])
    line("wall s", s_off.wall_s, s_on.wall_s, "{:.1f}")
    line("GPU s (engine busy)", s_off.gpu_s, s_on.gpu_s)
    line("GPU s per OCR'd page", s_off.gpu_s / s_off.pages_ocr, s_on.gpu_s / max(1, s_on.pages_ocr))
    line("$ per 1,000 pages direct", s_off.usd_per_1k_pages_direct, s_on.usd_per_1k_pages_direct, "{:.5f}")
    line(
        "$ per 1,000 pages fully loaded",
        s_off.usd_per_1k_pages_fully_loaded,
        s_on.usd_per_1k_pages_fully_loaded,
        "{:.5f}",
    )
    line("render stage s (render_s summed)", off["render_s"], on["render_s"])
    print(
        f"routing on, its own estimates: GPU s avoided {s_on.gpu_s_avoided_estimate:.3f} (measured: "
        f"{s_off.gpu_s - s_on.gpu_s:.3f}), $ per 1,000 pages without routing "
        f"{s_on.usd_per_1k_pages_direct_without_routing:.5f} (measured: {s_off.usd_per_1k_pages_direct:.5f})"
    )
    pages = born + scanned
    print(
        f"router in the render stage: {on['route_s']:.3f} s ({1000 * on['route_s'] / pages:.2f} ms a page) = "
        f"{on['route_s'] / off['render_s']:.1%} of the render stage's seconds with routing off "
        f"({on['route_s'] / on['render_s']:.1%} of its seconds with routing on)"
    )
    print(f"OCR stage pass-through of a routed row: {pass_us:.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--born-share", type=float, default=0.7)
    parser.add_argument("--pages-per-doc", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()

    import ray

    root = Path(tempfile.mkdtemp(prefix="bench-routing-"))
    born, scanned = write_corpus(root / "in", args.pages, args.born_share, args.pages_per_doc)
    pass_us = pass_through_us(root)
    ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        # Routing on first: a run that comes second finds Ray's workers warm, so on is not favoured.
        on = run(config(root, "text_layer", args.max_new_tokens))
        off = run(config(root, "ocr", args.max_new_tokens))
    finally:
        ray.shutdown()
    report(off, on, born, scanned, pass_us)


if __name__ == "__main__":
    main()
