"""Input folder entries that a listing must not take at face value, made for real (no mocks): a folder
that cannot be listed, for root too."""

from __future__ import annotations

import os
from pathlib import Path


def unlistable_folder(parent: Path, pdf: bytes = b"%PDF-1.4 lost") -> Path:
    """A chain of folders below `parent` whose deepest absolute path exceeds PATH_MAX, with a PDF at the
    bottom: listing the chain fails with ENAMETOOLONG ("File name too long") whatever the permissions,
    so it works where chmod 000 does not stop the user (root). Built through directory file descriptors,
    since no single path can reach the bottom."""
    os.makedirs(parent, exist_ok=True)
    fd = os.open(parent, os.O_RDONLY)
    segment = "d" * 200
    depth = (os.pathconf("/", "PC_PATH_MAX") - len(str(parent))) // (len(segment) + 1) + 2
    for _ in range(depth):
        os.mkdir(segment, dir_fd=fd)
        child = os.open(segment, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    out = os.open("lost.pdf", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
    os.write(out, pdf)
    os.close(out)
    os.close(fd)
    return parent
