"""vLLM engine against the transformers engine: the same pages, the same forced output lengths, one run.

Pages: N synthetic text pages, each forced to its own output length (short and long mixed, drawn in
[--min-tokens, --max-tokens] with a fixed seed), so both engines produce exactly the same token counts:
vLLM per request (max_tokens = L, ignore_eos), the transformers engine through a logits processor that
forces EOS at token L of each row (a static batch still decodes until its longest row ends; that is the
cost being measured). Repetition guards are off in both: forced lengths say when a page ends.

Printed, side by side:
  1. pages/s and output tokens/s of the vLLM engine (all pages submitted at once) against the transformers
     engine's best static batch (each of --hf-batches tried), the same pruning on both (--retention).
  2. in vLLM, pruned against unpruned at each of --prefill-retentions: prefill time (every page with one
     output token: encoder + pruning + prefill) against the ideal (V + T) / (rV + T), and how many
     sequences (prompt + mean output) fit in a fixed KV cache of --kv-cache-gib.

CPU (the v1 fixture, fp32, 2 threads; slow: about 20 minutes):
    .venv-vllm/bin/python -m benchmarks.bench_vllm --threads 2
GPU (real v1 sizes, random weights, bf16; see benchmarks/gpu_checks.sh):
    python -m benchmarks.bench_vllm --real-size --dtype bfloat16 --pages 256 --hf-batches 8 16 32 64
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from rtprune.api import PruneConfig
from rtprune.engines.contract import EngineConfig

_REPO = Path(__file__).resolve().parents[1]
# <repo>/../shared beside a checkout; a git worktree one level deeper sees it at <repo>/../../shared.
_CANDIDATES = [
    base / "shared" / "fixtures" / "deepseek-ocr-v1-tiny" for base in (_REPO.parent, _REPO.parent.parent)
]
FIXTURE = next((c for c in _CANDIDATES if (c / "model.safetensors").is_file()), _CANDIDATES[0])
PAGE_PX = (1191, 1684)  # A4 at 144 dpi


def output_lengths(n: int, low: int, high: int, seed: int) -> list[int]:
    """Mixed lengths: half the pages short (low .. 4 low), half anywhere up to high, shuffled."""
    rng = random.Random(seed)
    short = [rng.randint(low, min(4 * low, high)) for _ in range(n // 2)]
    rest = [rng.randint(low, high) for _ in range(n - n // 2)]
    lengths = short + rest
    rng.shuffle(lengths)
    return lengths


def model_folder(args: argparse.Namespace, root: Path) -> Path:
    """The fixture as a vLLM-loadable folder, or (--real-size) v1's real config with a tokenizer and no
    weights (vLLM loads it with load_format="dummy")."""
    from rtprune.engines.vllm.plugin.fixture import prepare_model_dir, save_tokenizer

    if not args.real_size:
        return prepare_model_dir(Path(args.fixture), root / "fixture")
    from benchmarks.bench_prefill import full_v1_config
    from rtprune.models.v1_config import v1_config_json

    folder = root / "real-size"
    folder.mkdir(parents=True, exist_ok=True)
    cfg = full_v1_config(None, None)
    (folder / "config.json").write_text(json.dumps(v1_config_json(cfg), indent=1))
    save_tokenizer(folder, cfg.text_config.vocab_size, cfg.image_token_id)
    return folder


def hf_engine(args: argparse.Namespace, folder: Path, config: EngineConfig) -> Any:
    from transformers import AutoTokenizer

    from rtprune.engines.hf.engine import OcrEngine
    from rtprune.engines.hf.loader import resolve_device, resolve_dtype
    from rtprune.models.deepseek_v1 import DeepseekOcrV1Backend

    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if args.real_size:  # random weights of the real sizes (speed does not depend on their values)
        from transformers import UnlimitedOcrForConditionalGeneration

        from benchmarks.bench_prefill import full_v1_config

        torch.manual_seed(0)
        model = UnlimitedOcrForConditionalGeneration(full_v1_config(None, None)).to(
            device=device, dtype=dtype
        )
        backend = DeepseekOcrV1Backend(
            model, tokenizer, model_id="random-real-size-v1", mode=config.mode, prompt=config.prompt
        )
    else:
        backend = DeepseekOcrV1Backend.from_pretrained(
            str(folder),
            mode=config.mode,
            dtype=dtype,
            device=str(device),
            tokenizer=tokenizer,
            prompt=config.prompt,
        )
    return OcrEngine(config, backend=backend)


class ForcedLengths:
    """transformers logits processor: row i emits exactly lengths[i] tokens, the last one EOS."""

    def __init__(self, prompt_len: int, lengths: list[int], eos: int) -> None:
        self.prompt_len, self.eos = prompt_len, eos
        self.lengths = torch.tensor(lengths)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        n = input_ids.shape[1] - self.prompt_len
        end = (self.lengths.to(scores.device) - 1) <= n
        scores[:, self.eos] = torch.where(end, 0.0, float("-inf")).to(scores.dtype)
        scores[end] = torch.where(
            torch.arange(scores.shape[1], device=scores.device) == self.eos, 0.0, float("-inf")
        ).to(scores.dtype)
        return scores


def hf_batch(engine: Any, images: list, lengths: list[int], prune: PruneConfig) -> int:
    """One static batch through the transformers engine's stages; -> output tokens (EOS included)."""
    from transformers import GenerationConfig
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    from rtprune.engines.vllm.plugin import effective_prune

    pages = engine.prepare(images)
    features, _ = engine.encode(pages)
    pruned, _ = engine.prune(pages, features, effective_prune(prune))
    batch = engine.build_prompts(pruned)
    tok = engine.backend.tokenizer
    eos = int(tok.eos_token_id)
    gen = GenerationConfig(do_sample=False, max_new_tokens=max(lengths), eos_token_id=eos, pad_token_id=eos)
    mm = {"image": BaseModelOutputWithPooling(pooler_output=[p.features for p in pruned])}
    with torch.inference_mode():
        out = engine.backend.model.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            mm_encoder_outputs=mm,
            generation_config=gen,
            logits_processor=[ForcedLengths(batch.input_ids.shape[1], lengths, eos)],
        )
    new = out[:, batch.input_ids.shape[1] :]
    counts = [int((row == eos).nonzero()[0]) + 1 for row in new]
    if counts != lengths:
        raise RuntimeError(f"forced lengths not met: {counts} != {lengths}")
    return sum(counts)


def run_hf(engine: Any, images: list, lengths: list[int], batch_size: int, prune: PruneConfig) -> dict:
    start, tokens, rows = time.perf_counter(), 0, 0
    for k in range(0, len(images), batch_size):
        part = lengths[k : k + batch_size]
        tokens += hf_batch(engine, images[k : k + batch_size], part, prune)
        rows += len(part) * max(part)
    return {"s": time.perf_counter() - start, "tokens": tokens, "useful_rows": tokens / rows}


def run_vllm(engine: Any, images: list, lengths: list[int], prune: PruneConfig) -> dict:
    from rtprune.engines.vllm.pages import PageError

    start = time.perf_counter()
    results = engine.ocr_settled(images, prune=prune, max_new_tokens=lengths, ignore_eos=True)
    seconds = time.perf_counter() - start
    failed = [r for r in results if isinstance(r, PageError)]
    if failed:
        raise RuntimeError(f"{len(failed)} pages failed, first: {failed[0].reason}")
    counts = [r.usage.output_tokens for r in results]
    if counts != lengths:
        raise RuntimeError(f"forced lengths not met: {counts[:8]}... != {lengths[:8]}...")
    return {"s": seconds, "tokens": sum(counts), "usage": [r.usage for r in results]}


def kv_bytes_per_token(folder: Path, dtype: str) -> int:
    """K and V of every LM layer for one token (plain MHA: v1 has no MLA)."""
    raw = json.loads((folder / "config.json").read_text())
    lang = raw.get("language_config", raw)
    heads = lang["num_key_value_heads"] if lang.get("num_key_value_heads") else lang["num_attention_heads"]
    head_dim = lang["hidden_size"] // lang["num_attention_heads"]
    return 2 * lang["num_hidden_layers"] * heads * head_dim * (4 if dtype == "float32" else 2)


def sequences_that_fit(cache_bytes: float, per_token: int, block: int, tokens_per_seq: float) -> int:
    """Sequences whose blocks (prompt + mean output, rounded up to whole blocks) fit in the cache."""
    blocks = int(cache_bytes // (per_token * block))
    return blocks // math.ceil(tokens_per_seq / block)


def report_throughput(vllm: dict, hf: dict[int, dict], n_pages: int) -> None:
    best = min(hf, key=lambda b: hf[b]["s"])
    print("\n== throughput (same pages, same forced lengths, same pruning) ==")
    for b, r in sorted(hf.items()):
        print(
            f"transformers batch {b:3d}: {r['s']:8.1f} s  {n_pages / r['s']:6.3f} pages/s  "
            f"{r['tokens'] / r['s']:7.1f} tokens/s  useful decode rows {r['useful_rows']:.0%}"
        )
    print(
        f"vLLM (all at once):     {vllm['s']:8.1f} s  {n_pages / vllm['s']:6.3f} pages/s  "
        f"{vllm['tokens'] / vllm['s']:7.1f} tokens/s"
    )
    print(f"RATIO vLLM / best static batch ({best}): {hf[best]['s'] / vllm['s']:.2f}x pages/s and tokens/s")


def report_prefill(
    runs: dict[float, dict], args: argparse.Namespace, per_token: int, mean_out: float, block: int
) -> None:
    cache = args.kv_cache_gib * 2**30
    base = runs[1.0]
    print("\n== vLLM prefill (1 output token per page) and KV-cache capacity, pruned vs unpruned ==")
    for r, run in sorted(runs.items(), reverse=True):
        u = run["usage"]
        v = sum(x.visual_tokens for x in u) / len(u)
        kept = sum(x.visual_tokens_kept for x in u) / len(u)
        prompt = sum(x.prompt_tokens for x in u) / len(u)
        text = prompt - kept
        ideal = (v + text) / (kept + text)
        fit = sequences_that_fit(cache, per_token, block, prompt + mean_out)
        fit_base = sequences_that_fit(
            cache,
            per_token,
            block,
            sum(x.prompt_tokens for x in base["usage"]) / len(base["usage"]) + mean_out,
        )
        print(
            f"retention {r:4.2f}: kept {kept:6.1f}/{v:.0f} visual, prompt {prompt:6.1f}; prefill "
            f"{run['s']:7.2f} s, speedup {base['s'] / run['s']:.2f}x (ideal {ideal:.2f}x); "
            f"fit in {args.kv_cache_gib} GiB: {fit} sequences ({fit / fit_base:.2f}x)"
        )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fixture", default=str(FIXTURE), help="v1 checkpoint folder (tiny fixture by default)")
    p.add_argument("--real-size", action="store_true", help="v1's real sizes, random weights (GPU)")
    p.add_argument("--pages", type=int, default=64)
    p.add_argument("--min-tokens", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--mode", default="base", help="v1 mode (base: 273 visual tokens per page)")
    p.add_argument("--retention", type=float, default=0.84, help="pruning on both engines for the throughput")
    p.add_argument("--prefill-retentions", type=float, nargs="+", default=[0.84, 0.6])
    p.add_argument("--hf-batches", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--kv-cache-gib", type=float, default=2.0)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for both engines")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def prepare_run(args: argparse.Namespace) -> tuple[list, list[int]]:
    """Line-buffered output (results appear as they are measured, also in a log file), the CPU threads
    asked for, no core pinning (a shared machine); -> the pages (synthetic, seeded) and their forced output
    lengths."""
    sys.stdout.reconfigure(line_buffering=True)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    from benchmarks.bench_prefill import synthetic_page

    images = [synthetic_page(PAGE_PX, seed=args.seed + i) for i in range(args.pages)]
    return images, output_lengths(args.pages, args.min_tokens, args.max_tokens, args.seed)


def main() -> None:
    args = parse_args()
    images, lengths = prepare_run(args)
    from rtprune.engines.vllm.engine import VllmEngine
    from rtprune.engines.vllm.settings import VllmSettings

    prune = PruneConfig(retention=args.retention) if args.retention < 1 else PruneConfig(method="none")
    print(
        f"{args.pages} pages {PAGE_PX[0]}x{PAGE_PX[1]} px, mode {args.mode}, {args.dtype}, threads "
        f"{args.threads or torch.get_num_threads()}, {sum(lengths)} output tokens "
        f"({min(lengths)}-{max(lengths)}, mean {sum(lengths) / len(lengths):.0f}), retention {args.retention}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = model_folder(args, Path(tmp))
        config = EngineConfig(
            model=str(folder), mode=args.mode, dtype=args.dtype, prune=prune, max_new_tokens=args.max_tokens
        )
        settings = VllmSettings(
            max_num_seqs=args.pages,
            kv_cache_gib=args.kv_cache_gib,
            load_format="dummy" if args.real_size else "auto",
        )
        with VllmEngine(config.model_copy(update={"backend": "vllm"}), settings) as engine:
            run_vllm(engine, images[:2], [2, 2], prune)  # warm-up
            prefill = {
                r: run_vllm(
                    engine,
                    images,
                    [1] * len(images),
                    PruneConfig(retention=r) if r < 1 else PruneConfig(method="none"),
                )
                for r in [1.0, *args.prefill_retentions]
            }
            vllm = run_vllm(engine, images, lengths, prune)
            block = engine._llm.vllm_config.cache_config.block_size
        # printed as soon as measured: a long run that is stopped still leaves its numbers
        report_prefill(
            prefill, args, kv_bytes_per_token(folder, args.dtype), sum(lengths) / len(lengths), block
        )
        print(
            f"\nvLLM (all at once): {vllm['s']:.1f} s, {args.pages / vllm['s']:.3f} pages/s, "
            f"{vllm['tokens'] / vllm['s']:.1f} tokens/s"
        )
        hf = hf_engine(args, folder, config.model_copy(update={"backend": "hf"}))
        hf_batch(hf, images[:2], [2, 2], prune)  # warm-up
        hf_runs = {}
        for b in args.hf_batches:
            hf_runs[b] = run_hf(hf, images, lengths, b, prune)
            print(f"transformers batch {b}: {hf_runs[b]['s']:.1f} s")
    report_throughput(vllm, hf_runs, args.pages)


if __name__ == "__main__":
    main()
