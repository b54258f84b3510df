"""What the vLLM engine's confidence and its stream loop guard cost, measured side by side in one run.

Part 1, confidence: the same pages with the same forced output lengths (max_tokens = L, ignore_eos), with
the sampled tokens' log-probabilities collected (VllmSettings.token_logprobs, SamplingParams logprobs=0)
and without, back to back in each round on one engine (the order flips every round). Printed: output
tokens/s of both in each round, and the throughput lost to collecting confidence as the median over rounds
of each round's own ratio (paired: load from other processes that changes between rounds cancels; goal:
under 2%).

Part 2, loop guards: pages decoded greedily under a short repetition guard (--ngram / --window), which the
random-weight fixture trips on some pages, once with the logits-processor guard (EOS forced inside vLLM's
sampler) and once with the stream guard (the engine watches the streamed ids and aborts the request), each
on its own engine, alternating rounds. Printed: pages/s of both in each round; per guard the median
pages/s, tokens decoded per page and past the loop's stop (the processor's forced EOS, or what the stream
decoded before the abort landed), pages ended in `repetition`; and whether both guards gave every page
the same text and finish reason.

CPU (the v1 fixture, fp32; about 20 minutes on a shared 2-core machine):
    VLLM_CPU_OMP_THREADS_BIND=nobind .venv-vllm/bin/python -m benchmarks.bench_confidence --threads 2
GPU (real v1 sizes, random weights, bf16):
    python -m benchmarks.bench_confidence --real-size --dtype bfloat16 --pages 256 --max-tokens 512
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_vllm import FIXTURE, model_folder, prepare_run
from rtprune.api import PruneConfig
from rtprune.engines.contract import EngineConfig


def engine_for(args: argparse.Namespace, folder: Path, guard: str) -> Any:
    from rtprune.engines.vllm.engine import VllmEngine
    from rtprune.engines.vllm.settings import VllmSettings

    config = EngineConfig(
        model=str(folder),
        backend="vllm",
        mode=args.mode,
        dtype=args.dtype,
        prune=PruneConfig(retention=0.84),
        max_new_tokens=args.loop_cap,
        repetition_ngram=args.ngram,
        repetition_window=args.window,
    )
    settings = VllmSettings(
        max_num_seqs=args.pages,
        kv_cache_gib=args.kv_cache_gib,
        enforce_eager=not args.real_size,  # no compile on CPU: it costs minutes on a small machine
        load_format="dummy" if args.real_size else "auto",
        repetition_guard=guard,
    )
    return VllmEngine(config, settings)


def forced_round(engine: Any, images: list, lengths: list[int], collect: bool) -> float:
    """Output tokens/s of one round with confidence collection on or off (the engine's setting)."""
    engine.settings = engine.settings.model_copy(update={"token_logprobs": collect})
    start = time.perf_counter()
    results = engine.ocr_settled(images, max_new_tokens=lengths, ignore_eos=True)
    seconds = time.perf_counter() - start
    if [r.usage.output_tokens for r in results] != lengths:
        raise RuntimeError("forced lengths not met")
    scored = [len(r.token_logprobs) for r in results]
    if scored != (lengths if collect else [0] * len(lengths)):
        raise RuntimeError(f"confidence {'missing' if collect else 'collected while off'}: {scored[:4]}...")
    return sum(lengths) / seconds


def confidence_cost(engine: Any, images: list, lengths: list[int], rounds: int) -> None:
    rates: dict[bool, list[float]] = {True: [], False: []}
    for k in range(rounds):
        for collect in (True, False) if k % 2 == 0 else (False, True):
            rates[collect].append(forced_round(engine, images, lengths, collect))
        print(f"round {k + 1}: with {rates[True][-1]:.1f} tokens/s, without {rates[False][-1]:.1f} tokens/s")
    losses = [100 * (off - on) / off for on, off in zip(rates[True], rates[False], strict=True)]
    print(
        f"median over {rounds} rounds: with confidence {statistics.median(rates[True]):.1f} tokens/s, "
        f"without {statistics.median(rates[False]):.1f} tokens/s; throughput lost, median of the rounds' "
        f"own ratios {statistics.median(losses):+.2f}% (rounds {min(losses):+.1f}% .. {max(losses):+.1f}%; "
        f"goal < 2%)"
    )


def guard_round(engine: Any, images: list) -> dict:
    start = time.perf_counter()
    results = engine.ocr(images)
    seconds = time.perf_counter() - start
    looped = [r for r in results if r.usage.finish_reason == "repetition"]
    return {
        "s": seconds,
        "outcomes": [(r.text, r.usage.finish_reason) for r in results],
        "decoded": sum(r.usage.output_tokens for r in results),
        # tokens decoded after the text's last one: the forced EOS, or the stream's tokens before the abort
        "past_stop": sum(r.usage.output_tokens - len(r.token_logprobs) for r in looped),
        "looped": len(looped),
    }


def guard_cost(engines: dict[str, Any], images: list, rounds: int) -> None:
    runs: dict[str, list[dict]] = {name: [] for name in engines}
    for k in range(rounds):
        order = list(engines) if k % 2 == 0 else list(reversed(engines))
        for name in order:
            runs[name].append(guard_round(engines[name], images))
        print(
            f"round {k + 1}: "
            + ", ".join(f"{n} {len(images) / runs[n][-1]['s']:.3f} pages/s" for n in engines)
        )
    for name, done in runs.items():
        seconds = statistics.median(r["s"] for r in done)
        looped = done[0]["looped"]
        print(
            f"{name:>16}: {len(images) / seconds:.3f} pages/s (median of {rounds}), "
            f"{done[0]['decoded'] / len(images):.1f} tokens decoded per page, "
            f"{done[0]['past_stop'] / max(looped, 1):.1f} past the stop per looping page, "
            f"{looped} of {len(images)} pages ended in repetition"
        )
    first, second = (runs[name][0]["outcomes"] for name in engines)
    same = sum(a == b for a, b in zip(first, second, strict=True))
    print(f"same text and finish reason under both guards: {same} of {len(images)} pages")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fixture", default=str(FIXTURE), help="v1 checkpoint folder (tiny fixture by default)")
    p.add_argument("--real-size", action="store_true", help="v1's real sizes, random weights (GPU)")
    p.add_argument("--pages", type=int, default=16)
    p.add_argument("--min-tokens", type=int, default=16, help="part 1: forced output lengths")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--mode", default="tiny", help="v1 mode (tiny: 64 visual tokens: decode dominates)")
    p.add_argument("--ngram", type=int, default=4, help="part 2: the repetition guard's n-gram")
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--loop-cap", type=int, default=128, help="part 2: token cap of pages that never loop")
    p.add_argument("--kv-cache-gib", type=float, default=1.0)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    images, lengths = prepare_run(args)
    print(
        f"{args.pages} pages, mode {args.mode}, {args.dtype}, threads {args.threads or torch.get_num_threads()}; "
        f"part 1: {sum(lengths)} forced output tokens; part 2: guard {args.ngram}/{args.window}, cap "
        f"{args.loop_cap}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = model_folder(args, Path(tmp))
        with engine_for(args, folder, "logits_processor") as processor:
            processor.ocr_settled(images[:2], max_new_tokens=[2, 2], ignore_eos=True)  # warm-up
            print("\n1. confidence collection (logprobs=0) on the vLLM engine")
            confidence_cost(processor, images, lengths, args.rounds)
            with engine_for(args, folder, "stream") as stream:
                stream.ocr_settled(images[:2], max_new_tokens=[2, 2], ignore_eos=True)
                print("\n2. loop guards on the same pages")
                guard_cost({"logits processor": processor, "stream guard": stream}, images, args.rounds)


if __name__ == "__main__":
    main()
