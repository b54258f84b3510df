"""Checks that need a CUDA device (marker `gpu`; excluded from the default run, skipped without CUDA).

Run on a GPU machine with `python -m pytest -m gpu -q`, or all GPU checks and benchmarks with
`bash benchmarks/gpu_checks.sh`.
"""

import pytest
import torch
from PIL import Image

from rtprune import PruneConfig, prune, prune_batch
from rtprune.engines.contract import EngineConfig
from rtprune.engines.hf.engine import OcrEngine

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def page(width: int, height: int, seed: int) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(height, width, 3, generator=g) * 255).to(torch.uint8).numpy()
    return Image.fromarray(pixels)


def test_prune_on_gpu_selects_what_the_cpu_selects_and_bf16_stays_close():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(421, 1280, generator=g)
    protected = torch.zeros(421, dtype=torch.bool)
    protected[20::21] = True
    cfg = PruneConfig(method="rtprune", retention=0.84)
    cpu = prune(tokens, cfg, protected)
    gpu = prune(tokens.cuda(), cfg, protected.cuda())
    assert torch.equal(cpu.kept_index, gpu.kept_index.cpu())  # norms in fp32, quantised tie-break
    torch.testing.assert_close(gpu.tokens.cpu(), cpu.tokens, rtol=1e-4, atol=1e-4)
    half = prune(tokens.cuda().bfloat16(), cfg, protected.cuda())
    assert half.tokens.dtype == torch.bfloat16 and torch.isfinite(half.tokens.float()).all()
    overlap = len(set(half.kept_index.tolist()) & set(cpu.kept_index.tolist())) / cpu.kept_index.numel()
    assert half.kept_index.numel() == cpu.kept_index.numel() and overlap > 0.95  # bf16 moves near-ties only
    batched = prune_batch([tokens.cuda()] * 3, cfg, protected=[protected.cuda()] * 3)
    assert all(torch.equal(r.kept_index.cpu(), cpu.kept_index) for r in batched)


@pytest.mark.parametrize("model", ["tiny-random-v1", "tiny-random-v2"])
def test_engine_on_gpu_keep_all_equals_unpruned_and_pruning_shrinks_prompts(model):
    images = [page(600, 850, 1), page(850, 600, 2)]
    base = {"model": model, "device": "cuda", "dtype": "float32", "max_new_tokens": 8}
    unpruned = OcrEngine(EngineConfig(**base, prune={"method": "none"})).ocr(images)
    keep_all = OcrEngine(EngineConfig(**base, prune={"method": "rtprune", "retention": 1.0})).ocr(images)
    pruned = OcrEngine(EngineConfig(**base, prune={"method": "rtprune", "retention": 0.6})).ocr(images)
    assert [r.text for r in unpruned] == [r.text for r in keep_all]
    for before, after in zip(unpruned, pruned, strict=True):
        assert after.usage.visual_tokens_kept < before.usage.visual_tokens_kept
        assert after.usage.prompt_tokens < before.usage.prompt_tokens
        assert after.usage.prefill_s > 0 and after.usage.decode_s > 0
