"""Which entries of a folder listing are documents, and what the listing says about the rest.

Object stores list objects; a local folder lists entries of any kind. Only regular files are documents: a
FIFO would block its reader, a device (/dev/zero) would stream without end, a socket cannot be read. A
symbolic link counts as what it points to, hashed by its target's size and mtime (a changed target is
redone, an untouched link does not hide the change), and only while the target stays inside the input
folder, unless StorageConfig.follow_links_outside_input allows more. Links to folders are not followed.
Everything left out, and every folder that could not be listed, is logged (names escaped) and counted
(ListingNotes; the run summary's inputs_skipped)."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from typing import Any

from pipeline.redact import describe_error, loggable_name
from pipeline.store.fs import file_kind

log = logging.getLogger("pipeline")


@dataclass
class ListingNotes:
    """What a listing left out: each logged once as a warning (the first max_warnings of them), all counted."""

    skipped: int = 0
    max_warnings: int = 20

    def skip(self, name: str, reason: str) -> None:
        self.skipped += 1
        if self.skipped <= self.max_warnings:
            log.warning("input entry skipped: %s: %s", loggable_name(name), reason)
        elif self.skipped == self.max_warnings + 1:
            log.warning("further skipped input entries are not shown; the run summary counts them")

    def unlisted(self, exc: OSError) -> None:
        """fsspec's walk on_error: a folder below the input that could not be listed."""
        name = exc.filename if isinstance(exc.filename, str) else "(a folder)"
        self.skip(name, "folder could not be listed: " + describe_error(exc))


def input_root(path: str) -> str:
    """The real folder links must stay inside: the input folder, or a pattern's fixed leading folders."""
    fixed = path
    for ch in "*?[":
        fixed = fixed.split(ch, 1)[0]
    if fixed != path:
        fixed = fixed.rsplit("/", 1)[0] or "/"
    return os.path.realpath(fixed)


def local_entry(info: dict[str, Any], root: str, follow_outside: bool) -> dict[str, Any] | str:
    """A local listing entry as a document's info (a link's: its target's size and mtime, and the target
    path to read under "target"), or why it is not one."""
    if info.get("type") == "file" and not info.get("islink"):
        return info
    if not info.get("islink"):
        return f"not a regular file ({file_kind(int(info.get('mode') or 0))})"
    target = os.path.realpath(info["name"])
    try:
        st = os.stat(target)
    except OSError as exc:
        return "broken link: " + describe_error(exc)
    if not stat.S_ISREG(st.st_mode):
        return f"a link to {file_kind(st.st_mode)}"
    if not follow_outside and os.path.commonpath([target, root]) != root:
        return "a link that leads outside the input folder (storage.follow_links_outside_input allows it)"
    return {**info, "size": st.st_size, "mtime": st.st_mtime, "target": target}


def single_entry(info: dict[str, Any]) -> str:
    """Why a path named on its own (the input itself, a folder listing's only object) is not a document
    ("" when it is). It was named explicitly, so a link is followed wherever it leads; fsspec's info of a
    path already describes the link's target."""
    if info.get("type") == "file":
        return ""
    return f"not a regular file ({file_kind(int(info.get('mode') or 0))})"
