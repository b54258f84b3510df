"""An HTTP proxy on loopback that forwards to an S3-compatible server and injects faults on schedule.

Clients point their endpoint_url at the proxy. Requests are forwarded byte for byte (Host header
unchanged, so SigV4 signatures still verify upstream; bodies and Range responses streamed), unless
a rule matches: then the proxy answers an S3 error (503 SlowDown, 500 InternalError), resets the
connection, stalls, or cuts a response body short. Rules are set from the test while clients run.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

FaultKind = Literal["status", "reset", "stall", "cut_body"]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}
_ERROR_CODES = {500: "InternalError", 503: "SlowDown", 403: "AccessDenied"}
_CHUNK = 64 << 10


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 0
    seconds: float = 0.0  # stall length; for stall the request is forwarded afterwards

    @staticmethod
    def error(status: int = 503) -> Fault:
        return Fault("status", status=status)

    @staticmethod
    def reset() -> Fault:
        return Fault("reset")

    @staticmethod
    def stall(seconds: float) -> Fault:
        return Fault("stall", seconds=seconds)

    @staticmethod
    def cut_body() -> Fault:
        """Forward, send the headers and half the body, then reset: a connection dropped mid-download."""
        return Fault("cut_body")


@dataclass
class Rule:
    fault: Fault
    method: str | None = None  # None: any
    path: re.Pattern[str] | None = None  # searched in the request path (with query)
    times: int | None = None  # None: unlimited
    probability: float = 1.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def take(self, method: str, path: str) -> bool:
        """True if this rule fires for the request (and counts it)."""
        if self.times == 0 or (self.method and self.method != method):
            return False
        if self.path and not self.path.search(path):
            return False
        if self.probability < 1.0 and self.rng.random() >= self.probability:
            return False
        if self.times is not None:
            self.times -= 1
        return True


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    fault: FaultKind | None
    status: int  # what the client got (0: no response: reset or cut)


class FaultProxy:
    """Threaded proxy in front of `upstream_url` (http://host:port). Use as a context manager."""

    def __init__(self, upstream_url: str) -> None:
        host, port = upstream_url.removeprefix("http://").rstrip("/").split(":")
        self.upstream = (host, int(port))
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # wakes stalled handlers at shutdown
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fault-proxy").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def inject(
        self,
        fault: Fault,
        method: str | None = None,
        path: str | None = None,
        times: int | None = None,
        probability: float = 1.0,
        seed: int = 0,
    ) -> Rule:
        rule = Rule(
            fault, method, re.compile(path) if path else None, times, probability, random.Random(seed)
        )
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self, history: bool = False) -> None:
        """Drop all rules (and with history, the record of requests seen)."""
        with self.lock:
            self.rules.clear()
            if history:
                self.seen.clear()

    def match(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for rule in self.rules:
                if rule.take(method, path):
                    return rule.fault
        return None

    def record(self, seen: Seen) -> None:
        with self.lock:
            self.seen.append(seen)

    def faults(self, kind: FaultKind | None = None) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.fault and (kind is None or s.fault == kind)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet; Seen records requests
        pass

    def _proxy(self) -> None:
        try:
            self._handle_one()
        except (ConnectionError, OSError):  # the client gave up (timeout after a stall) or we reset it
            self.close_connection = True

    def finish(self) -> None:
        with contextlib.suppress(ConnectionError, OSError, ValueError):  # socket already closed by _reset
            super().finish()

    def _handle_one(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        body = self._read_body()
        fault = proxy.match(self.command, self.path)
        if fault and fault.kind == "stall":
            proxy.stopping.wait(fault.seconds)
        if fault and fault.kind in ("status", "reset"):
            status = self._send_error(fault.status) if fault.kind == "status" else self._reset()
            proxy.record(Seen(self.command, self.path, fault.kind, status))
            return
        status = self._forward(proxy.upstream, body, cut=bool(fault and fault.kind == "cut_body"))
        proxy.record(Seen(self.command, self.path, fault.kind if fault else None, status))

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _proxy

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

    def _forward(self, upstream: tuple[str, int], body: bytes, cut: bool) -> int:
        conn = http.client.HTTPConnection(*upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body or "Content-Length" in self.headers or self.headers.get("Transfer-Encoding"):
                headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            return self._relay(response, cut)
        finally:
            conn.close()

    def _relay(self, response: http.client.HTTPResponse, cut: bool) -> int:
        """Stream the upstream response back; with `cut`, reset after half the body."""
        length = response.getheader("Content-Length")
        data = None if length is not None or self.command == "HEAD" else response.read()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP and key.lower() not in ("content-length", "server", "date"):
                self.send_header(key, value)
        total = len(data) if data is not None else int(length or 0)
        self.send_header("Content-Length", str(total))
        self.end_headers()
        if self.command == "HEAD":
            return response.status
        sent, limit = 0, total // 2 if cut else total
        while sent < limit:
            chunk = (
                data[sent : sent + _CHUNK] if data is not None else response.read(min(_CHUNK, total - sent))
            )
            if not chunk:
                break
            chunk = chunk[: limit - sent]
            self.wfile.write(chunk)
            sent += len(chunk)
        if cut:
            self._reset()
            return 0
        return response.status

    def _send_error(self, status: int) -> int:
        code = _ERROR_CODES.get(status, "InternalError")
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>injected by the fault proxy</Message><RequestId>fault</RequestId></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def _reset(self) -> int:
        """Close with SO_LINGER 0: the client sees a TCP RST, not a clean end of stream."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
        return 0
