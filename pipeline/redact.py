"""One redaction helper: every URI or exception text that leaves the process (rows, logs, errors, ledger)
goes through here, so credentials and signed query strings never reach an output.

Two kinds of URI meet here. A *URL* (http(s), or any URI inside free text) may carry a signature in its
query and userinfo in its authority: redact_uri drops both. A *listed name* (protocol + bucket + key from
fsspec, or a local path) is a name, not a URL: '?', '#', tabs, newlines and odd Unicode are part of the key,
so source_name keeps it verbatim and only strips userinfo from the authority."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

_MASK = "***"
# key=value pairs that carry credentials in URLs, botocore messages or repr()s of configs.
_SECRET_PAIR = re.compile(
    r"(?i)\b(aws_secret_access_key|aws_access_key_id|aws_session_token|secret|key|token|password|signature|"
    r"x-amz-signature|x-amz-credential|x-amz-security-token)(['\"]?\s*[=:]\s*['\"]?)([^\s'\",&}]+)"
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
# scheme://user:password@ — only before the first '/', where a key can no longer start.
_AUTHORITY_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@")
_URL_SCHEMES = ("http://", "https://")


def redact_uri(uri: str) -> str:
    """Drop user:password@ and the query string/fragment (pre-signed URLs carry signatures there)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return _MASK
    if not parts.scheme or len(parts.scheme) == 1:  # plain path (a Windows drive letter is not a scheme)
        return uri.split("?", 1)[0]
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def source_name(uri: str) -> str:
    """The form of a listed document's URI that rows and the ledger carry (and doc_id is hashed from).
    http(s) URIs are URLs (pre-signed ones carry signatures in the query): redacted. Anything else is a
    name: verbatim but for userinfo in the authority (s3://key:secret@bucket/...)."""
    if uri.lower().startswith(_URL_SCHEMES):
        return redact_uri(uri)
    return _AUTHORITY_USERINFO.sub(r"\1", uri, count=1)


def loggable_name(name: str) -> str:
    """A listed name as a log line shows it: repr() escapes control characters and bidi overrides, so a
    key cannot forge or split log lines. Rows keep the name itself; only logs use this form."""
    return repr(name)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Scrub known secret values, credential-looking key=value pairs and URL userinfo/queries from text."""
    for value in secrets:
        if value:
            text = text.replace(value, _MASK)
    text = _URL.sub(lambda m: redact_uri(m.group(0)), text)
    return _SECRET_PAIR.sub(lambda m: m.group(1) + m.group(2) + _MASK, text)


def describe_error(exc: BaseException, secrets: Iterable[str] = (), limit: int = 500) -> str:
    """`Type: message`, redacted and bounded: the form every error column and log line uses."""
    return redact_text(f"{type(exc).__name__}: {exc}", secrets)[:limit]
