"""Prefill benchmark: the language-model prefill of full-size DeepSeek-OCR architectures, unpruned vs pruned.

Random weights (speed does not depend on their values), the real configs' sizes; `--layers N` cuts the LM
depth and `--vision-layers N` the encoders' depth for a CPU run (both reported). One page is prepared and
encoded once; the unpruned features and the pruned ones (retention 1.0, 0.84, 0.6 by default) then go
through the same prefill (engine.prefill: one forward that builds the KV cache), interleaved over repeats,
medians reported. Printed beside each measured speedup: the ideal (V + T) / (K + T) for V visual tokens,
K kept and T text tokens, i.e. prefill cost linear in prompt length.

    python -m benchmarks.bench_prefill --device cpu --layers 2 --vision-layers 2 --repeats 9 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from rtprune.api import PruneConfig
from rtprune.engines.contract import EngineConfig
from rtprune.engines.hf.batch import PrunedPage
from rtprune.engines.hf.engine import OcrEngine
from rtprune.engines.hf.loader import resolve_device, resolve_dtype

A4_PX = (1654, 2339)  # A4 at 200 dpi: v1 Large 400 tokens (+20 newlines, 1 separator); v2 6 tiles


def sam_global_layers(n_layers: int) -> list[int]:
    """SAM-B's global-attention layers that exist at this depth (a cut encoder may keep none)."""
    return [i for i in (2, 5, 8, 11) if i < n_layers]


def full_v1_config(layers: int | None, vision_layers: int | None):
    """DeepSeek-OCR v1's published sizes, through the v1 adapter's own config translation."""
    from rtprune.models.v1_config import unlimited_config_from_v1

    n_lm = layers or 12
    n_sam, n_clip = (vision_layers, vision_layers) if vision_layers else (12, 24)
    language = dict(
        vocab_size=129280,
        hidden_size=1280,
        intermediate_size=6848,
        num_hidden_layers=n_lm,
        num_attention_heads=10,
        num_key_value_heads=10,
        n_routed_experts=64,
        n_shared_experts=2,
        num_experts_per_tok=6,
        moe_intermediate_size=896,
        first_k_dense_replace=1,
        topk_method="greedy",
        max_position_embeddings=8192,
        bos_token_id=0,
        eos_token_id=1,
        use_mla=False,
    )
    width = {
        "sam_vit_b": dict(
            width=768,
            layers=n_sam,
            heads=12,
            global_attn_indexes=sam_global_layers(n_sam),
            downsample_channels=[512, 1024],
        ),
        "clip-l-14-224": dict(width=1024, layers=n_clip, heads=16, image_size=224, patch_size=14),
    }
    raw = {"model_type": "deepseek_vl_v2", "language_config": language, "vision_config": {"width": width}}
    return unlimited_config_from_v1(raw)


def build_v1(args: argparse.Namespace, device: torch.device, dtype: torch.dtype):
    from transformers import UnlimitedOcrForConditionalGeneration

    from rtprune.models.deepseek_v1 import DeepseekOcrV1Backend
    from rtprune.models.tiny_tokenizer import build_tiny_tokenizer

    config = full_v1_config(args.layers, args.vision_layers)
    torch.manual_seed(0)
    model = UnlimitedOcrForConditionalGeneration(config).to(device=device, dtype=dtype)
    tokenizer = build_tiny_tokenizer(config.text_config.vocab_size, config.image_token_id)
    return DeepseekOcrV1Backend(model, tokenizer, model_id="random-full-size-v1", mode="large")


def full_v2_config(layers: int | None, vision_layers: int | None):
    """DeepSeek-OCR-2's published sizes (LM: DeepSeek-V2 MoE 3B; encoder: Qwen2-0.5B-sized, 896 wide)."""
    from transformers import DeepseekOcr2Config

    n_lm = layers or 12
    n_sam, n_enc = (vision_layers, vision_layers) if vision_layers else (12, 24)
    sam = dict(
        hidden_size=768,
        num_hidden_layers=n_sam,
        num_attention_heads=12,
        output_channels=256,
        downsample_channels=[512, 896],
        window_size=14,
        global_attn_indexes=sam_global_layers(n_sam),
    )
    encoder = dict(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=n_enc,
        num_attention_heads=14,
        num_key_value_heads=2,
        rms_norm_eps=1e-6,
    )
    text = dict(
        vocab_size=129280,
        hidden_size=1280,
        intermediate_size=6848,
        num_hidden_layers=n_lm,
        num_attention_heads=10,
        num_key_value_heads=10,
        n_routed_experts=64,
        n_shared_experts=2,
        num_experts_per_tok=6,
        moe_intermediate_size=896,
        topk_method="greedy",
        routed_scaling_factor=1.0,
        mlp_layer_types=["dense"] + ["sparse"] * (n_lm - 1),
        bos_token_id=0,
        eos_token_id=1,
        max_position_embeddings=8192,
        rms_norm_eps=1e-6,
    )
    return DeepseekOcr2Config(
        vision_config={"sam_config": sam, "encoder_config": encoder}, text_config=text, image_token_id=128815
    )


def build_v2(args: argparse.Namespace, device: torch.device, dtype: torch.dtype):
    from transformers import DeepseekOcr2ForConditionalGeneration

    from rtprune.models.deepseek_v2 import DeepseekOcr2Backend
    from rtprune.models.tiny_tokenizer import build_tiny_tokenizer

    config = full_v2_config(args.layers, args.vision_layers)
    torch.manual_seed(0)
    model = DeepseekOcr2ForConditionalGeneration(config).to(device=device, dtype=dtype)
    tokenizer = build_tiny_tokenizer(config.text_config.vocab_size, config.image_token_id)
    return DeepseekOcr2Backend(model, tokenizer, "random-full-size-v2")


BUILDERS = {"v1": build_v1, "v2": build_v2}


def synthetic_page(size_px: tuple[int, int], seed: int = 0):
    """A page with dark text-like strokes on white: pruning scores vary across tokens, as on a real page."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.full((size_px[1], size_px[0]), 255, dtype=np.uint8)
    for row in range(80, size_px[1] - 80, 36):
        if rng.random() < 0.8:
            width = int(rng.integers(size_px[0] // 4, size_px[0] - 160))
            pixels[row : row + 14, 80 : 80 + width] = rng.integers(0, 120, (14, width))
    return Image.fromarray(pixels).convert("RGB")


@dataclass
class Variant:
    name: str
    pruned: list[PrunedPage]
    prune_s: float
    times: list[float]


def make_variants(engine: OcrEngine, pages, features, retentions: list[float]) -> list[Variant]:
    """Unpruned (features passed as they are, no prune call) and one variant per retention."""
    unpruned = [PrunedPage(f, torch.arange(f.shape[0], device=f.device), f.shape[0]) for f in features]
    variants = [Variant("unpruned", unpruned, 0.0, [])]
    for retention in retentions:
        engine.prune(pages, features, PruneConfig(retention=retention))  # warm-up
        pruned, prune_s = engine.prune(pages, features, PruneConfig(retention=retention))
        variants.append(Variant(f"r={retention:g}", pruned, prune_s, []))
    return variants


def time_prefills(engine: OcrEngine, variants: list[Variant], repeats: int) -> None:
    """Warm each variant once, then interleave them over repeats so drift hits all alike."""
    for variant in variants:
        engine.prefill(variant.pruned)
    for _ in range(repeats):
        for variant in variants:
            variant.times.append(engine.prefill(variant.pruned))


def report(engine: OcrEngine, variants: list[Variant], encode_s: float) -> None:
    n_text = len(engine.backend.prompt_ids(0))
    n_visual = sum(p.n_visual for p in variants[0].pruned)
    base = statistics.median(variants[0].times)
    print(
        f"visual tokens V={n_visual}  text tokens T={n_text * len(variants[0].pruned)}  "
        f"encode {encode_s * 1e3:.0f} ms (once, batch)"
    )
    print(
        f"{'variant':>9} {'kept':>6} {'prefill ms':>11} {'min ms':>8} {'speedup':>8} {'ideal':>7} "
        f"{'meas/ideal':>10} {'prune ms':>9}"
    )
    for v in variants:
        kept = sum(p.n_kept for p in v.pruned)
        total_text = n_text * len(v.pruned)
        median = statistics.median(v.times)
        ideal = (n_visual + total_text) / (kept + total_text)
        speedup = base / median
        print(
            f"{v.name:>9} {kept:>6} {median * 1e3:>11.1f} {min(v.times) * 1e3:>8.1f} {speedup:>8.3f} {ideal:>7.3f} "
            f"{speedup / ideal:>10.1%} {v.prune_s * 1e3:>9.2f}"
        )
    same = [v for v in variants[1:] if sum(p.n_kept for p in v.pruned) == n_visual]
    if same:  # identical inputs: any difference from the unpruned row is the machine's timing noise
        noise = abs(statistics.median(same[0].times) / base - 1)
        print(
            f"noise floor: {same[0].name} and unpruned prefill the same tokens, medians differ by {noise:.1%}"
        )


def run_backend(name: str, args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    dtype = resolve_dtype("auto", device)
    start = time.perf_counter()
    backend = BUILDERS[name](args, device, dtype)
    engine = OcrEngine(EngineConfig(model=backend.model_id, device=str(device)), backend=backend)
    print(
        f"\n== {name}: {backend.model_id}, LM layers {backend.model.config.text_config.num_hidden_layers}, "
        f"vision layers {args.vision_layers or 'full'}, {device} {dtype}, batch {args.batch}, "
        f"built in {time.perf_counter() - start:.0f} s"
    )
    pages = engine.prepare([synthetic_page(A4_PX, seed) for seed in range(args.batch)])
    features, encode_s = engine.encode(pages)
    variants = make_variants(engine, pages, features, args.retentions)
    time_prefills(engine, variants, args.repeats)
    report(engine, variants, encode_s)
    del engine, backend, features, variants


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", nargs="+", default=sorted(BUILDERS), choices=sorted(BUILDERS))
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (fp32 on CPU, bf16 on CUDA)")
    parser.add_argument("--layers", type=int, default=None, help="LM depth (default: the real depth, 12)")
    parser.add_argument("--vision-layers", type=int, default=None, help="encoder depth (default: real)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1, help="pages per prefill")
    parser.add_argument("--retentions", type=float, nargs="+", default=[1.0, 0.84, 0.6])
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (1 is steadier on a shared machine); default: torch's",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    with torch.inference_mode():
        for name in args.backend:
            run_backend(name, args)


if __name__ == "__main__":
    main()
