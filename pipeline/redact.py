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
# user:password@ anywhere in free text, with or without a scheme before it (botocore quotes a bucket
# "KEY:SECRET@bucket" without one). The user part has no '/' or ':'; the password may hold single '/'
# (AWS secrets do) but not '//', so "s3://bucket/in/a:b@c.pdf" loses only "a:b", never the bucket.
# It starts only after a separator (start, space, quote, '/', '(', '=', ',', ';', '[', '<'), both parts
# are bounded and the password holds no ':', so long text without an '@' costs a few steps per position.
_USERINFO = re.compile(
    r"(?<![^\s'\"/(=,;\[<])((?:[a-zA-Z][a-zA-Z0-9+.-]{0,31}://)?)"
    r"[^\s'\"@/:<>()\[\]]{1,128}:(?:[^\s'\"@/:<>]|/(?!/)){0,256}@"
)
# A bucket name quoted by botocore that holds a colon and is not an ARN is what is left of
# "s3://KEY:SECRET/WITH/SLASH@bucket" once the URI was cut at the secret's first '/': mask all of it.
_QUOTED_BUCKET = re.compile(r"""(?i)(\bbucket(?: name)?:?\s*)(["'])(?!arn:)([^"'\s]*:[^"'\s]*)\2""")
_URL_SCHEMES = ("http://", "https://")


def redact_uri(uri: str) -> str:
    """Drop user:password@ and the query string/fragment (pre-signed URLs carry signatures there)."""
    try:
        parts = urlsplit(uri)
        port = parts.port  # raises on "host:notaport" (a secret where a port should be)
    except ValueError:
        return _MASK
    if not parts.scheme or len(parts.scheme) == 1:  # plain path (a Windows drive letter is not a scheme)
        return uri.split("?", 1)[0]
    netloc = parts.hostname or ""
    if port:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def source_name(uri: str) -> str:
    """The form of a listed document's URI that rows and the ledger carry (and doc_id is hashed from).
    http(s) URIs are URLs (pre-signed ones carry signatures in the query): redacted. Anything else is a
    name: verbatim but for userinfo in the authority (s3://key:secret@bucket/...)."""
    if uri.lower().startswith(_URL_SCHEMES):
        return redact_uri(uri)
    return _AUTHORITY_USERINFO.sub(r"\1", uri, count=1)


def has_userinfo(uri: str) -> bool:
    """Whether a URI carries credentials before its host: `scheme://user[:password]@host/...`, also when
    an unescaped '/' in the password cuts the authority short (`s3://KEY:wJal/rX@bucket`, where the
    authority is `KEY:wJal`: a colon that no port follows)."""
    if "://" not in uri:
        return False
    authority = uri.split("://", 1)[1].split("/", 1)[0]
    if "@" in authority:
        return True
    host_port = re.sub(r"\[[^\]]*\]", "", authority)  # an IPv6 literal holds colons of its own
    return ":" in host_port and not host_port.rsplit(":", 1)[1].isdigit()


def loggable_name(name: str) -> str:
    """A listed name as a log line shows it: repr() escapes control characters and bidi overrides, so a
    key cannot forge or split log lines. Rows keep the name itself; only logs use this form."""
    return repr(name)


def escape_controls(text: str) -> str:
    """Free text on one line: every character repr() would escape (control, format and separator
    characters: newlines, ANSI escapes, bidi overrides) as its repr() escape, the rest as it is.
    Idempotent: the escapes themselves are printable."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Scrub known secret values, credential-looking key=value pairs and URL userinfo/queries from text."""
    for value in secrets:
        if value:
            text = text.replace(value, _MASK)
    text = _USERINFO.sub(lambda m: m.group(1) + _MASK + "@", text)
    text = _QUOTED_BUCKET.sub(lambda m: m.group(1) + m.group(2) + _MASK + m.group(2), text)
    text = _URL.sub(lambda m: redact_uri(m.group(0)), text)
    return _SECRET_PAIR.sub(lambda m: m.group(1) + m.group(2) + _MASK, text)


def describe_error(exc: BaseException, secrets: Iterable[str] = (), limit: int = 500) -> str:
    """`Type: message`, redacted, on one line (control characters escaped: an error that quotes a hostile
    name cannot forge log lines) and bounded: the form every error column and log line uses."""
    return escape_controls(redact_text(f"{type(exc).__name__}: {exc}", secrets))[:limit]
