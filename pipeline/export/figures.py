"""Figures of exported documents: where each committed figure is copied (a folder beside the document's
Markdown, named like it), the links that reach the copies from each exported file, and the copy itself.

    markdown/{slug}-{hash}.md        the document (links: {slug}-{hash}/p0004-b002.png)
    markdown/{slug}-{hash}.html      its viewer (same links)
    markdown/{slug}-{hash}/p0004-b002.png   figure of block 2 on page 4, copied from figures/... of the output
    jsonl/...                        records whose links and blocks name markdown/{slug}-{hash}/p0004-b002.png
"""

from __future__ import annotations

import functools
import posixpath
from typing import TypeVar

from pipeline.export.records import Document
from pipeline.store.output import Output
from pipeline.store.retry import retry

K = TypeVar("K")
_COPY_BATCH = 64  # figures read and written at once (object stores transfer them concurrently)


def figure_folder(markdown_path: str) -> str:
    """The folder of a document's figures: its Markdown path without `.md`."""
    return markdown_path.removesuffix(".md")


def figure_copies(doc: Document, markdown_path: str) -> dict[str, str]:
    """figure key in the output -> its copy's path under the export root, for every block with a figure."""
    folder = figure_folder(markdown_path)
    return {
        block["figure"]: f"{folder}/p{page.index + 1:04d}-b{block['order']:03d}.png"
        for page in doc.pages
        for block in page.blocks
        if block["figure"]
    }


def relative_to(copies: dict[K, str], file_path: str) -> dict[K, str]:
    """The copies' paths as links from the exported file at `file_path` (both under the export root)."""
    base = posixpath.dirname(file_path)
    return {key: posixpath.relpath(path, base or ".") for key, path in copies.items()}


def copy_figures(source: Output, dest: Output, copies: dict[str, str]) -> None:
    """Copy each figure (key under the output root -> path under the export root), a batch at a time."""
    items = list(copies.items())
    for i in range(0, len(items), _COPY_BATCH):
        batch = dict(items[i : i + _COPY_BATCH])
        data = retry(functools.partial(source.fs.cat, [source.path(k) for k in batch]))
        files = {dest.path(path): data[source.path(key)] for key, path in batch.items()}
        for folder in {p.rsplit("/", 1)[0] for p in files}:
            dest.fs.makedirs(folder, exist_ok=True)
        retry(functools.partial(dest.fs.pipe, files))


def clear_folders(dest: Output, folders: list[str]) -> None:
    """Remove figure folders of documents exported before: a new version's figures replace them all."""
    for folder in folders:
        path = dest.path(folder)
        if dest.fs.exists(path):
            dest.fs.rm(path, recursive=True)
