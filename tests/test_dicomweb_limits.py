"""A WADO-RS answer cannot take the worker's memory: a declared length over the limit is refused
before reading, a chunked body as soon as it passes the limit; a body within it is read whole.
A real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ultra.dicom.dicomweb import DicomWebError, fetch_instance

BODY = b"DICM" * 4096  # 16 KiB


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom")
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(64):  # 1 MiB in 16 KiB chunks, no length declared
                self.wfile.write(f"{len(BODY):x}\r\n".encode() + BODY + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_an_answer_within_the_limit_is_read_whole(server: str) -> None:
    assert fetch_instance(f"{server}/sized", max_bytes=len(BODY)) == BODY


def test_a_declared_length_over_the_limit_is_refused(server: str) -> None:
    with pytest.raises(DicomWebError, match="16,384 bytes exceeds the limit of 1,000 bytes"):
        fetch_instance(f"{server}/sized", max_bytes=1000)


def test_a_chunked_answer_is_refused_once_it_passes_the_limit(server: str) -> None:
    with pytest.raises(DicomWebError, match="exceeds the limit of 100,000 bytes"):
        fetch_instance(f"{server}/chunked", max_bytes=100_000)
