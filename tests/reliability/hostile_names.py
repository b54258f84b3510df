"""Object keys a stranger could put in a bucket: each must stay inside the output prefix when the
pipeline derives file names from it, and come out byte-identical in the rows' source_uri."""

from __future__ import annotations

import posixpath
import unicodedata
from dataclasses import dataclass

S3_MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class NameCase:
    label: str
    key: str  # object key relative to the input prefix
    # moto's server answers 404 to a PUT of a key with a newline (AWS accepts it): such keys are
    # tested on local file:// inputs only.
    on_moto: bool = True


def hostile_names() -> list[NameCase]:
    cafe = "caf\u00e9 menu.pdf"
    long_segment = "L" * 300 + ".pdf"  # longer than a POSIX file name (255 bytes)
    deep = "/".join(["d" * 60] * 15) + "/deep.pdf"
    return [
        NameCase("dotdot_prefix", "../escape.pdf"),
        NameCase("dotdot_inner", "a/../../escape.pdf"),
        NameCase("dotdot_deep", "a/b/../../../../etc/escape.pdf"),
        NameCase("absolute", "/etc/x.pdf"),
        NameCase("dot_segment", "./here/./x.pdf"),
        NameCase("double_slash", "a//b.pdf"),
        NameCase("newline", "line\nbreak.pdf", on_moto=False),
        NameCase("carriage_return", "carriage\rreturn.pdf"),
        NameCase("tab", "tab\tname.pdf"),
        NameCase("backslash", "..\\..\\windows.pdf"),
        NameCase("url_specials", "q?x=1&y=2#frag %2e%2e.pdf"),
        NameCase("quotes", 'it\'s "quoted".pdf'),
        NameCase("rtl_override", "invoice\u202efdp.exe.pdf"),
        NameCase("nfc", cafe),
        NameCase("nfd", unicodedata.normalize("NFD", cafe)),  # a different key that looks the same
        NameCase("emoji", "\U0001f4c4 report \U0001f680.pdf"),
        NameCase("zero_width", "zero\u200bwidth.pdf"),
        NameCase("long_segment", long_segment),
        NameCase("deep_and_long", deep),
    ]


def moto_names() -> list[NameCase]:
    return [n for n in hostile_names() if n.on_moto]


def is_inside(prefix: str, path: str) -> bool:
    """True when `path` (a written file's path or URI) lies under `prefix` after resolving . and ..
    Both are compared as POSIX paths with the scheme stripped."""
    strip = lambda p: p.split("://", 1)[-1]  # noqa: E731 - one-line helper
    root = posixpath.normpath(strip(prefix))
    target = posixpath.normpath(strip(path))
    return target == root or target.startswith(root.rstrip("/") + "/")
