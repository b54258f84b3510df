"""Reading a document's bytes is bounded whatever the listing said: a FIFO or a device (or a link to one)
is refused instead of blocking or streaming without end, the byte cap holds while reading, and a read
that does not finish within its time limit becomes that document's read error."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import RenderConfig, StorageConfig
from pipeline.stages.isolation import IsolatedRenderer
from pipeline.stages.render import render_document
from pipeline.stages.rows import RunStamp
from pipeline.store.fs import read_bytes
from pipeline.store.listing import list_documents
from rtprune.engines.contract import EngineIdentity

STAMP = RunStamp("r1", EngineIdentity("tiny-random-v1", "tiny", "rtprune", "abc"))


def _rows(uri: str, size_bytes: int, cfg: RenderConfig) -> list[dict[str, Any]]:
    """render_document on its own thread: a read that blocks fails the test instead of hanging it."""
    doc = {"doc_id": "d", "uri": uri, "source_uri": uri, "size_bytes": size_bytes, "content_hash": "h"}
    renderer = IsolatedRenderer(cfg)  # its child starts on the first render: read errors never get there
    out: list[list[dict[str, Any]]] = []
    worker = threading.Thread(
        target=lambda: out.append(render_document(doc, renderer, StorageConfig(), STAMP, cfg)), daemon=True
    )
    worker.start()
    worker.join(60)
    renderer.close()
    assert out, "the read blocked"
    return out[0]


def test_a_fifo_named_in_a_uri_list_is_that_documents_read_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.pdf")
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'pipe.pdf'}\n")
    (ref,) = list_documents(str(tmp_path / "list.txt"), StorageConfig())
    (row,) = _rows(ref.uri, ref.size_bytes, RenderConfig())
    assert (row["status"], row["error_stage"]) == ("error", "read") and "not a regular file" in row["error"]
    assert "FIFO" in row["error"], row["error"]


@pytest.mark.parametrize("link", [False, True])
def test_dev_zero_listed_with_size_zero_is_refused_not_read_without_end(tmp_path: Path, link: bool) -> None:
    uri = "/dev/zero"
    if link:
        (tmp_path / "zero.pdf").symlink_to("/dev/zero")
        uri = str(tmp_path / "zero.pdf")
    (row,) = _rows(uri, 0, RenderConfig(max_bytes=1 << 20))
    assert row["error_stage"] == "read" and "not a regular file" in row["error"], row["error"]


def test_the_byte_cap_holds_while_reading_whatever_the_listing_said(tmp_path: Path) -> None:
    path = tmp_path / "grows.pdf"
    path.write_bytes(b"%PDF-1.7\n")
    (ref,) = list_documents(str(path), StorageConfig())
    path.write_bytes(b"%PDF-1.7\n" + b"0" * 5000)  # grew after the listing
    (row,) = _rows(ref.uri, ref.size_bytes, RenderConfig(max_bytes=4096))
    assert row["error_stage"] == "render" and "too large" in row["error"] and "4096" in row["error"]
    assert "read stopped" in row["error"], row["error"]  # refused by the read, before any render


def test_read_bytes_reads_at_most_one_byte_past_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "a.pdf"
    path.write_bytes(b"x" * 100)
    assert len(read_bytes(str(path), StorageConfig(), max_bytes=10)) == 11
    assert read_bytes(str(path), StorageConfig()) == b"x" * 100


@pytest.fixture
def silent_server() -> Any:
    """An HTTP endpoint that accepts connections and never answers (a stalled store)."""
    server = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/doc.pdf"
    stop.set()
    thread.join()
    for conn in conns:  # the abandoned read ends once its connection drops
        conn.close()
    server.close()


def test_a_read_that_never_answers_becomes_a_read_error_at_its_time_limit(silent_server: str) -> None:
    (row,) = _rows(silent_server, 10, RenderConfig(document_read_timeout_s=1.0))
    assert row["error_stage"] == "read" and "no answer within 1 s" in row["error"], row["error"]
    assert "render.document_read_timeout_s" in row["error"]
