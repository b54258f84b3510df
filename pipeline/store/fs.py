"""fsspec access with the run's storage settings: the filesystem for a URI, and reading an object."""

from __future__ import annotations

import os
import stat

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from pipeline.config import StorageConfig

_S3_PROTOCOLS = {"s3", "s3a"}


def filesystem(uri: str, storage: StorageConfig) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path) for a URI; S3 settings apply only to s3:// so local paths keep working."""
    protocol = uri.split("://", 1)[0] if "://" in uri else "file"
    if protocol not in _S3_PROTOCOLS:
        return url_to_fs(uri)
    fs, path = url_to_fs(uri, **storage.fsspec_options())
    fs.retries = storage.s3fs_retries  # a class attribute in s3fs; fsspec caches fs per options, all ours
    return fs, path


class NotRegularFileError(ValueError):
    """A local path that is a FIFO, a device, a socket or a folder: never read (reading could block or
    never end). A ValueError, so the retry helper does not try again."""


def read_bytes(uri: str, storage: StorageConfig, max_bytes: int | None = None) -> bytes:
    """The object's bytes; with max_bytes, at most max_bytes + 1 of them (more than max_bytes back means
    "over the cap", whatever the listing said the size was). A local path is read only when it is a
    regular file (links followed): see _read_local."""
    fs, path = filesystem(uri, storage)
    limit = -1 if max_bytes is None else max_bytes + 1
    if isinstance(fs, LocalFileSystem):
        return _read_local(path, limit)
    with fs.open(path, "rb") as f:
        return f.read(limit)


def _read_local(path: str, limit: int) -> bytes:
    """Opened non-blocking and checked with fstat on the open file (no window between check and read):
    a FIFO would block the open, /dev/zero would stream without end; both are refused at once."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"not a regular file ({file_kind(mode)}): {path!r}")
        chunks: list[bytes] = []
        left = limit
        while left != 0:
            chunk = os.read(fd, 1 << 20 if left < 0 else min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left = left - len(chunk) if left > 0 else left
        return b"".join(chunks)
    finally:
        os.close(fd)


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages: "a FIFO", "a character device", ..."""
    kinds = [
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a plain file")
