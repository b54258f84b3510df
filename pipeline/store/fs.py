"""fsspec access with the run's storage settings: the filesystem for a URI, and reading an object."""

from __future__ import annotations

import fsspec
from fsspec.core import url_to_fs

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


def read_bytes(uri: str, storage: StorageConfig) -> bytes:
    fs, path = filesystem(uri, storage)
    with fs.open(path, "rb") as f:
        return f.read()
