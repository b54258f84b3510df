"""Where a run may write: a relative local output is fine from a shell, and lost under Ray's job server.

A job submitted with `ray job submit --working-dir DIR` runs in Ray's temporary copy of DIR (below the Ray
session folder on the head node), which Ray deletes when the copy is no longer needed. A relative output
would land there, where nobody looks for it. Such a run is refused before it does any work, with a message
that says what to give instead; jobs/ decides whether the run is under a job server."""

from __future__ import annotations

from pathlib import PurePosixPath

LOCAL_SCHEMES = ("file://", "local://")


def is_relative_local(uri: str) -> bool:
    """Whether `uri` names a local path relative to the working directory: "out", "./out", "file://out".
    URIs of other stores (s3://, gs://, memory://...) and absolute paths are not."""
    for scheme in LOCAL_SCHEMES:
        if uri.startswith(scheme):
            uri = uri[len(scheme) :]
            break
    else:
        if "://" in uri:
            return False
    return not PurePosixPath(uri).is_absolute() and not uri.startswith("~")


def output_refusal(field: str, uri: str, under_job_server: bool) -> str | None:
    """The reason a run must not start with `field` = `uri`, or None when it may. Only a relative local
    output under a job server is refused; the message names the field and what to give instead."""
    if not under_job_server or not is_relative_local(uri):
        return None
    return (
        f"{field} {uri!r} is a relative path, and this job runs under Ray's job server, in a temporary copy "
        "of the working directory that Ray deletes: the output would be lost. Give an absolute path "
        f"({field}=/data/ocr; on a cluster of several machines, one that every node can reach) "
        f"or a URI ({field}=s3://bucket/prefix)."
    )
