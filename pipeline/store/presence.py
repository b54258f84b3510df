"""Whether an output root is one a digitize run wrote to: readers (export, the cost report) refuse any
other, instead of reading nothing and reporting "nothing new"."""

from __future__ import annotations

from pipeline.redact import redact_uri
from pipeline.store.output import Output

# What a digitize run leaves at the top of its output: commit records, the committed index, run summaries
# (a run that found nothing to do still writes its summary).
_MARKS = ("_ledger", "_index", "runs")


class NotAnOutput(FileNotFoundError):
    """The output root holds nothing a digitize run wrote (a wrong URI, or no run finished or committed)."""


def require_digitize_output(out: Output, uri: str) -> None:
    """Raise NotAnOutput unless `out` (opened from `uri`) holds a commit record, an index or a run summary.
    One existence check per mark (a prefix probe on object stores), never a listing of the ledger."""
    out.fs.invalidate_cache(out.root)  # fsspec shares filesystems per process: see what others wrote since
    if any(out.fs.exists(out.path(mark)) for mark in _MARKS):
        return
    raise NotAnOutput(
        f"no digitize run has written to {redact_uri(uri)} (no commit records, index or run summaries): "
        "check the output URI"
    )
