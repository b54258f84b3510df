"""What routing costs in the render child, per page, measured side by side on the labelled routing set and
the sample PDFs: the page features and the Markdown of the text layer against rendering the page at 144 dpi
(raw pixels, and pixels encoded as PNG, the render stage's default page_format).

    python -m benchmarks.bench_page_features                  # all pages, best of 3 runs each
    python -m benchmarks.bench_page_features --pymupdf4llm 3   # also pymupdf4llm.to_markdown on 3 pages

Columns are milliseconds per page (the best of --repeats runs, medians over the pages of a kind):
render = get_pixmap at 144 dpi; png = render + PNG encoding; get_text = the plain text the render child
takes today; features = page_features (its own display list); shared = a display list made once, features
from it, then the pixmap from it (what a routed render child does for a page that still goes to OCR);
markdown = the Markdown of an already read text layer.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

from pipeline.routing_set import labelled_pages
from pipeline.samples import sample_pdf_bytes
from pipeline.stages.page_features import page_features, read_text_layer
from pipeline.stages.page_markdown import layer_markdown

COLUMNS = ("render", "png", "get_text", "features", "shared", "markdown")


def best_ms(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def page_costs(page, repeats: int) -> dict[str, float]:
    """One page's costs in ms (each the best of `repeats` runs)."""
    import pymupdf

    matrix = pymupdf.Matrix(2, 2)  # 144 dpi

    def shared():
        display_list = page.get_displaylist()
        page_features(page, read_text_layer(page, display_list))
        display_list.get_pixmap(matrix=matrix, colorspace=pymupdf.csRGB, alpha=False)

    layer = read_text_layer(page)
    return {
        "render": best_ms(
            lambda: page.get_pixmap(matrix=matrix, colorspace=pymupdf.csRGB, alpha=False), repeats
        ),
        "png": best_ms(
            lambda: page.get_pixmap(matrix=matrix, colorspace=pymupdf.csRGB, alpha=False).tobytes("png"),
            repeats,
        ),
        "get_text": best_ms(lambda: page.get_text("text"), repeats),
        "features": best_ms(lambda: page_features(page), repeats),
        "shared": best_ms(shared, repeats),
        "markdown": best_ms(lambda: layer_markdown(layer), repeats),
    }


def documents() -> list[tuple[str, bytes, list[int]]]:
    """(kind, PDF bytes, page indices): the labelled set's documents and three sample PDFs."""
    grouped: dict[int, tuple[str, bytes, list[int]]] = {}
    for p in labelled_pages(seed=0):
        grouped.setdefault(id(p.pdf_bytes), (p.kind, p.pdf_bytes, []))[2].append(p.page_index)
    samples = [("samples", sample_pdf_bytes(3, seed=s), [0, 1, 2]) for s in range(3)]
    return [*grouped.values(), *samples]


def print_table(costs: dict[str, list[dict[str, float]]]) -> None:
    print(
        f"{'kind':22s}{'pages':>6s}"
        + "".join(f"{c:>10s}" for c in COLUMNS)
        + f"{'feat/render':>12s}{'feat/png':>10s}"
    )
    rows = [*costs.items(), ("all", [c for cs in costs.values() for c in cs])]
    for kind, pages in rows:
        med = {c: statistics.median(p[c] for p in pages) for c in COLUMNS}
        total = {c: sum(p[c] for p in pages) for c in COLUMNS}
        print(
            f"{kind:22s}{len(pages):6d}"
            + "".join(f"{med[c]:10.2f}" for c in COLUMNS)
            + f"{total['features'] / total['render']:12.1%}{total['features'] / total['png']:10.1%}"
        )


def pymupdf4llm_costs(pages: int) -> None:
    """pymupdf4llm.to_markdown per page, with its layout model (the default when pymupdf.layout is
    installed) and in its older heuristic mode."""
    import pymupdf
    import pymupdf4llm

    doc = pymupdf.open(stream=sample_pdf_bytes(pages), filetype="pdf")
    page = doc[0]
    ours = best_ms(lambda: layer_markdown(read_text_layer(page)), 3)
    for label, layout in (("layout model", True), ("heuristic", False)):
        pymupdf4llm.use_layout(layout)
        ms = [
            best_ms(lambda i=i: pymupdf4llm.to_markdown(doc, pages=[i], show_progress=False), 1)
            for i in range(pages)
        ]
        print(
            f"pymupdf4llm.to_markdown ({label}): {statistics.median(ms):.0f} ms/page; ours {ours:.1f} ms/page"
        )


def main(argv: list[str] | None = None) -> int:
    import pymupdf

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pymupdf4llm", type=int, default=0, metavar="PAGES")
    args = parser.parse_args(argv)
    costs: dict[str, list[dict[str, float]]] = defaultdict(list)
    for kind, data, indices in documents():
        with pymupdf.open(stream=data, filetype="pdf") as doc:
            for i in indices:
                costs[kind].append(page_costs(doc[i], args.repeats))
    print_table(costs)
    if args.pymupdf4llm:
        pymupdf4llm_costs(args.pymupdf4llm)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
