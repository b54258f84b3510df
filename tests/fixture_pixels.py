"""The v1 conformance fixture's input pixels, computed as its README specifies (nothing is stored)."""

from __future__ import annotations

import numpy as np
import torch


def fixture_view(k: int, size: int) -> torch.Tensor:
    """The fixture README's view k: (3, S, S) float32, computed in float64 as specified."""
    ch = np.arange(3, dtype=np.float64)[:, None, None]
    y = np.arange(size, dtype=np.float64)[None, :, None]
    x = np.arange(size, dtype=np.float64)[None, None, :]
    p = np.sin(0.013 * (x + 1) * (ch + 1) + 0.7 * k) * np.cos(0.007 * (y + 1) * (ch + 2) - 0.3 * k)
    p = p + 0.25 * np.sin(0.0005 * (x + 1) * (y + 1) + ch + k)
    return torch.from_numpy(np.clip(p, -1, 1)).float()
