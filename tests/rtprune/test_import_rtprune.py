"""`import rtprune` must stay light: the GPU actors and the driver import it before anything heavy."""

from __future__ import annotations

import subprocess
import sys


def test_import_rtprune_loads_no_heavy_framework():
    code = (
        "import sys, rtprune; from rtprune import PruneConfig, prune, prune_batch; "
        "heavy = [m for m in ('ray', 'transformers', 'pydantic', 'fitz', 'pymupdf', 'ot') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
