#!/usr/bin/env bash
# GPU checks and timings in one go, for a machine with a CUDA device (CI and developer machines have none).
# Usage: bash benchmarks/gpu_checks.sh [OUT_DIR]    (writes one log per step into OUT_DIR, default ./gpu_out)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_out}
mkdir -p "$out"
py=${PYTHON:-python}
export PYTHONUNBUFFERED=1
nvidia-smi | tee "$out/nvidia-smi.txt"
$py -m pytest -m gpu -q 2>&1 | tee "$out/gpu_tests.txt"
# Pruning cost per page (target: RTPrune under 1 ms per page on a GPU), fp32 and bf16.
$py -m benchmarks.bench_prune --device cuda --repeats 50 2>&1 | tee "$out/bench_prune_fp32.txt"
$py -m benchmarks.bench_prune --device cuda --dtype bfloat16 --repeats 50 2>&1 | tee "$out/bench_prune_bf16.txt"
# Full-depth prefill, bf16: measured speedup at retention 0.84 vs the ideal (V + T) / (rV + T).
$py -m benchmarks.bench_prefill --device cuda --repeats 15 2>&1 | tee "$out/bench_prefill.txt"
$py -m benchmarks.bench_prefill --device cuda --repeats 15 --batch 8 2>&1 | tee "$out/bench_prefill_b8.txt"
# vLLM engine vs the transformers engine at v1's real sizes (random weights, bf16, load_format="dummy"):
# pages/s and tokens/s at the same pruning (goal: >= 3x the best static batch), and in vLLM pruned vs
# unpruned prefill and KV-cache capacity. vLLM comes from VLLM_PYTHON, this python if it has vllm, or a
# fresh .venv-gpu made by infra/vllm/install.sh (the CUDA `vllm` extra; a few minutes).
vpy=${VLLM_PYTHON:-}
if [ -z "$vpy" ] && $py -c "import vllm" 2>/dev/null; then vpy=$py; fi
if [ -z "$vpy" ]; then
    bash infra/vllm/install.sh .venv-gpu cuda 2>&1 | tee "$out/vllm_install.txt" && vpy=.venv-gpu/bin/python
fi
if [ -n "$vpy" ]; then
    $vpy -m benchmarks.bench_vllm --real-size --dtype bfloat16 --mode large --pages 256 --min-tokens 64 \
        --max-tokens 1024 --hf-batches 8 16 32 64 --kv-cache-gib 8 2>&1 | tee "$out/bench_vllm.txt"
fi
