"""Make PyPI's CUDA torchvision importable next to the CPU torch (run by infra/vllm/install.sh).

Its compiled ops cannot load without CUDA torch; `_meta_registrations.py` then registers fake kernels for
ops that do not exist, and `import torchvision` fails with "operator torchvision::nms does not exist". The
other registrations in that file are already guarded by `torchvision.extension._has_ops()`; this adds the
same guard to the two `torch.library.register_fake` ones. Idempotent; only this environment's copy changes; a torchvision whose ops load (a CPU
build, or a CUDA machine) is left as it is.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

UNGUARDED = '@torch.library.register_fake("torchvision::'
GUARDED = (
    "@(torch.library.register_fake if torchvision.extension._has_ops() "
    'else (lambda *_a, **_k: (lambda fn: fn)))("torchvision::'
)


def imports_cleanly() -> bool:
    check = subprocess.run(
        [sys.executable, "-c", "import torchvision.transforms"], capture_output=True, text=True
    )
    return check.returncode == 0


def main() -> int:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        print("torchvision is not installed: nothing to guard")
        return 0
    if imports_cleanly():
        print("torchvision imports: nothing to guard")
        return 0
    path = Path(spec.origin).parent / "_meta_registrations.py"
    source = path.read_text()
    if UNGUARDED not in source:
        print(
            f"torchvision does not import, and {path} has no unguarded registration to fix", file=sys.stderr
        )
        return 1
    # A new file renamed over the old one: installers hard-link package files from their cache, and
    # writing through the link would change every environment that shares it.
    patched = path.with_suffix(".py.guarded")
    patched.write_text(source.replace(UNGUARDED, GUARDED))
    os.replace(patched, path)
    if not imports_cleanly():
        print("torchvision still does not import after guarding its fake-op registrations", file=sys.stderr)
        return 1
    print(f"guarded {source.count(UNGUARDED)} fake-op registrations in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
