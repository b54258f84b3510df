"""Milliseconds per page of every pruning method, single page and batched, side by side in one run.

    python -m benchmarks.bench_prune --device cpu --threads 1
    python -m benchmarks.bench_prune --device cuda --dtype bfloat16

Shapes: v1 Large (421 tokens: 400 cells, 20 newlines and a separator protected, D = 1280) and
DeepSeek-OCR-2 with 6 tiles (1121 tokens: 1120 queries, 1 separator protected, no spatial cells).
Pages are synthetic (benchmarks/synthetic_pages.py). Reports the median of --repeats timed runs after
warm-up; CUDA runs synchronise before reading the clock. Also prints, for RTPrune, the Sinkhorn
column-marginal error, to show that the iteration cap does not cut the solver short.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import torch

from benchmarks.synthetic_pages import SyntheticPage, text_page, v2_page
from rtprune import PruneConfig, prune, prune_batch

METHODS: dict[str, PruneConfig] = {
    "none": PruneConfig(method="none"),
    "rtprune": PruneConfig(),
    "rtprune-dynamic": PruneConfig(dynamic=True),
    "rtprune-semi-mass": PruneConfig(ot_formulation="semi_relaxed", merge="mass"),
    "rtprune-dustbin": PruneConfig(ot_formulation="dustbin"),
    "norm": PruneConfig(method="norm"),
    "random": PruneConfig(method="random"),
    "padding": PruneConfig(method="padding"),
    "spatial": PruneConfig(method="spatial"),
    "tome": PruneConfig(method="tome"),
    "divprune": PruneConfig(method="divprune"),
}


def _median_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> tuple[float, float]:
    """(median wall ms, median process CPU ms) of `repeats` runs after 3 warm-up runs. On a shared CPU
    the wall time includes waiting for a core; the CPU time is what the work itself took."""
    for _ in range(3):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def _to(page: SyntheticPage, device: torch.device, dtype: torch.dtype) -> SyntheticPage:
    return SyntheticPage(
        page.tokens.to(device, dtype),
        page.protected.to(device),
        page.padding.to(device),
        page.token_boxes.to(device),
        page.image.to(device),
    )


def _kwargs(page: SyntheticPage) -> dict[str, torch.Tensor]:
    return {"padding": page.padding, "image": page.image, "token_boxes": page.token_boxes}


def bench_shape(
    name: str, pages: list[SyntheticPage], args: argparse.Namespace, device: torch.device
) -> None:
    """Print one table: method, ms/page single, ms/page batched, kept tokens."""
    print(
        f"\n{name}: {pages[0].tokens.shape[0]} x {pages[0].tokens.shape[1]} tokens, batch {len(pages)}, "
        f"{pages[0].tokens.dtype}, {device}"
    )
    print(
        f"{'method':<20}{'single wall':>12}{'single cpu':>12}{'batch wall':>12}{'batch cpu':>12}{'kept':>7}"
        "   (ms per page, medians)"
    )
    for method, config in METHODS.items():
        if args.methods and method not in args.methods:
            continue
        page = pages[0]
        kept = prune(page.tokens, config, page.protected, **_kwargs(page)).tokens.shape[0]
        single = _median_ms(
            lambda p=page, c=config: prune(p.tokens, c, p.protected, **_kwargs(p)), args.repeats, device
        )
        batched = _median_ms(
            lambda c=config: prune_batch(
                [p.tokens for p in pages],
                c,
                protected=[p.protected for p in pages],
                padding=[p.padding for p in pages],
                image=[p.image for p in pages],
                token_boxes=[p.token_boxes for p in pages],
            ),
            max(3, args.repeats // 4),
            device,
        )
        b_wall, b_cpu = (v / len(pages) for v in batched)
        print(f"{method:<20}{single[0]:>12.3f}{single[1]:>12.3f}{b_wall:>12.3f}{b_cpu:>12.3f}{kept:>7}")


def marginal_error(page: SyntheticPage, config: PruneConfig) -> float:
    """L1 error of the kept-side marginal of RTPrune's plan on this page at the configured iterations."""
    from rtprune.method import front_positions, gather_rows, sinkhorn_spec
    from rtprune.select import default_budget, select_by_norm
    from rtprune.transport import cosine_cost, log_uniform, sinkhorn_log

    x, prunable = page.tokens[None], ~page.protected[None]
    budget = default_budget(int(prunable.sum()), config.retention)
    selected = select_by_norm(x, prunable, torch.tensor([budget], device=x.device), config.norm_tie_tol)
    src, vs = front_positions(prunable & ~selected)
    tgt, vt = front_positions(selected)
    cost = cosine_cost(gather_rows(x, src), gather_rows(x, tgt))
    log_b = log_uniform(vt)
    plan = torch.exp(sinkhorn_log(cost, log_uniform(vs), log_b, sinkhorn_spec(config)))
    return float((plan.sum(1) - log_b.exp()).abs().sum())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default=None,
        help="token dtype (default: float32 on cpu, bfloat16 on cuda)",
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--methods", nargs="*", default=None, help="subset of: " + " ".join(METHODS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    v1 = [_to(text_page(seed), device, dtype) for seed in range(args.batch)]
    v2 = [_to(v2_page(seed), device, dtype) for seed in range(args.batch)]
    bench_shape("DeepSeek-OCR v1 Large", v1, args, device)
    bench_shape("DeepSeek-OCR-2, 6 tiles", v2, args, device)
    for name, page in (("v1", v1[0]), ("v2", v2[0])):
        base = METHODS["rtprune"]
        print(
            f"\nSinkhorn kept-marginal L1 error on a {name} page: "
            f"{marginal_error(page, base):.2e} at max_iter {base.ot_max_iter}, "
            f"{marginal_error(page, replace(base, ot_max_iter=2000, ot_tol=0.0)):.2e} at 2000"
        )


if __name__ == "__main__":
    main()
