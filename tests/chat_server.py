"""A scripted OpenAI-compatible endpoint on 127.0.0.1 for the chat-client tests: a real HTTP
server in a thread whose replies a test function decides."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = tuple[int, str]
"""HTTP status and body text."""


def completion(content: str) -> str:
    """The body of a chat completion whose first choice says ``content``."""
    message = {"role": "assistant", "content": content}
    return json.dumps({"object": "chat.completion", "choices": [{"index": 0, "message": message}]})


@contextmanager
def chat_server(reply: Callable[[str, dict, dict], Reply]) -> Iterator[tuple[str, list[dict]]]:
    """Yields the API root (``http://127.0.0.1:PORT/v1``) and the list of request bodies it got;
    ``reply(path, headers, body)`` answers each POST."""
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            return

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append(body)
            status, text = reply(self.path, dict(self.headers), body)
            payload = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", bodies
    finally:
        server.shutdown()
        server.server_close()
