"""``ultra serve`` under hostile and oversized requests, as a real server on a loopback port.

One row each: large images are decoded one at a time and shrunk at once, within a request's and
the server's budget (a 400 and a 429 past them); bodies Python's JSON reader chokes on are a 400 in
OpenAI's shape before any stream starts, with no traceback in the log; no error, response or log
line quotes the prompt or a request field; an empty question is refused. The full-size memory case
(eight 7999x7999 PNGs) is ``benchmarks/serve_memory.py``; here the images are 3000x3000.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import httpx
import psutil
import pytest
from PIL import Image, ImageDraw

from tests.servers import free_port, running

MODEL = "ultra-tiny-zh"
MARKER = "张三丰MRN0042"  # a stand-in for patient text: it must never come back or reach the log
MB = 1 << 20
# An image of SIDE² decodes to SIDE² x 4 bytes (+ one band while it is shrunk): 3000² is 45 MB.
SIDE = 3000
REQUEST_BUDGET_MB = 64
SERVER_BUDGET_MB = 56
MAX_BODY_MB = 8


def png_url(side: int) -> str:
    image = Image.new("RGB", (side, side), (40, 40, 40))
    ImageDraw.Draw(image).ellipse((side // 4, side // 4, side // 2, side // 2), fill=(200, 150, 90))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_message(text: str, urls: list[str]) -> dict:
    parts = [{"type": "text", "text": text}] + [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return {"role": "user", "content": parts}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve_limits") / "server.log"
    args = ["serve", "--port", str(port), "--max-images", "8"]
    args += ["--image-budget-mb", str(REQUEST_BUDGET_MB), "--server-image-budget-mb", str(SERVER_BUDGET_MB)]
    args += ["--max-body-mb", str(MAX_BODY_MB)]
    with running(args, f"http://127.0.0.1:{port}/health", log) as process:
        yield f"http://127.0.0.1:{port}", psutil.Process(process.pid), log


def post(url: str, body: dict | str | bytes) -> httpx.Response:
    content = body if isinstance(body, str | bytes) else json.dumps(body, ensure_ascii=False).encode()
    return httpx.post(
        url + "/v1/chat/completions", content=content, headers={"Content-Type": "application/json"}, timeout=120
    )


def openai_error(response: httpx.Response, status: int) -> dict:
    """The body is OpenAI's error object, sent as JSON (never as an event stream)."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def rss(process: psutil.Process) -> int:
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def test_large_images_are_shrunk_one_at_a_time_within_the_budgets(server):
    url, process, _ = server
    big = png_url(SIDE)
    # the same request with small images first: what generation itself keeps is in ``idle``
    post(url, {"model": MODEL, "max_tokens": 2, "messages": [image_message("有病灶吗？", [png_url(64)] * 8)]})
    idle = rss(process)
    peak = idle
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.01):
            peak = max(peak, rss(process))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        response = post(url, {"model": MODEL, "max_tokens": 2, "messages": [image_message("有病灶吗？", [big] * 8)]})
    finally:
        stop.set()
        sampler.join()
    assert response.status_code == 200, response.text[:500]
    # eight full images would hold 8 x 36 MB; one at a time, shrunk, the peak is about one
    assert peak - idle < 150 * MB, f"grew {(peak - idle) / MB:.0f} MB"
    time.sleep(0.5)
    assert rss(process) - idle < 60 * MB, f"held {(rss(process) - idle) / MB:.0f} MB when idle"
    assert httpx.get(url + "/health").json()["images"]["decoded_bytes_held"] == 0

    # past the server's budget (all requests together): 429, OpenAI's rate-limit shape
    busy = openai_error(post(url, {"model": MODEL, "messages": [image_message("看图", [png_url(3600)])]}), 429)
    assert busy["code"] == "rate_limit_exceeded" and busy["param"] is None
    assert "retry" in busy["message"]
    # past the request's own budget: the client's fault, a 400 naming the image's field
    too_big = openai_error(post(url, {"model": MODEL, "messages": [image_message("看图", [png_url(4200)])]}), 400)
    assert too_big["code"] == "image_too_large" and too_big["param"] == "messages[0].content[1].image_url"
    assert httpx.get(url + "/health").json()["images"]["decoded_bytes_held"] == 0


def test_a_body_past_the_limit_is_a_413_without_being_read_whole(server):
    url, _, _ = server
    padding = "A" * (MAX_BODY_MB * MB)
    body = {"model": MODEL, "messages": [image_message("看图", ["data:image/png;base64," + padding])]}
    assert openai_error(post(url, body), 413)["code"] == "request_too_large"

    def chunks():  # no Content-Length: the limit is found while reading
        yield b'{"model": "ultra-tiny-zh", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY_MB + 1):
            yield b"A" * MB
        yield b'"}]}'

    response = httpx.post(
        url + "/v1/chat/completions", content=chunks(), headers={"Content-Type": "application/json"}, timeout=60
    )
    assert openai_error(response, 413)["code"] == "request_too_large"


BAD_BODIES = {
    "nested 100 000 deep": '{"model": "ultra-tiny-zh", "messages": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "a 5000-digit integer": '{"model": "ultra-tiny-zh", "max_tokens": ' + "9" * 5000
    + ', "messages": [{"role": "user", "content": "你好"}]}',
    "seed 2**64": {"model": MODEL, "seed": 2**64, "temperature": 0.7, "messages": [{"role": "user", "content": "你好"}]},
    "a lone surrogate in a message": '{"model": "ultra-tiny-zh", "messages": [{"role": "user", "content": "x\\ud800"}]}',
    "a lone surrogate in a text part": '{"model": "ultra-tiny-zh", "messages": [{"role": "user", "content": '
    '[{"type": "text", "text": "\\udfff"}]}]}',
    "a lone surrogate in model": '{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}',
    "temperature NaN": '{"model": "ultra-tiny-zh", "temperature": NaN, "messages": [{"role": "user", "content": "hi"}]}',
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_bodies_json_chokes_on_are_a_400_before_any_stream(server, stream):
    url, _, log = server
    for name, body in BAD_BODIES.items():
        if isinstance(body, dict):
            body = {**body, "stream": stream}
        else:
            body = body[:-1] + f', "stream": {json.dumps(stream)}}}'
        error = openai_error(post(url, body), 400)
        assert error["type"] == "invalid_request_error", name
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "Exception" not in text, text[-3000:]


def test_no_error_response_or_log_quotes_the_prompt_or_a_request_field(server):
    url, _, log = server
    cases = [
        {"model": f"gpt-{MARKER}", "messages": [{"role": "user", "content": MARKER}]},  # unknown model
        {"model": MODEL, "messages": [{"role": "user", "content": f"<image>{MARKER}"}]},  # reserved token
        {"model": MODEL, "messages": [{"role": "user", "content": MARKER * 20_000}]},  # prompt too long
        {"model": MODEL, "messages": [{"role": "assistant", "content": MARKER}]},  # no question last
        {"model": MODEL, "stop": [""], "messages": [{"role": "user", "content": MARKER}]},
        {"model": MODEL, "messages": [{"role": MARKER, "content": MARKER}]},  # unknown role
        {
            "model": MODEL,
            "messages": [image_message(MARKER, ["data:image/png;base64," + base64.b64encode(MARKER.encode()).decode()])],
        },
    ]
    for body in cases:
        for stream in (False, True):
            response = post(url, {**body, "stream": stream})
            assert 400 <= response.status_code < 500, response.text[:300]
            openai_error(response, response.status_code)
            assert MARKER not in response.text and "gpt-" not in response.text
    answered = post(url, {"model": MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": MARKER}]})
    assert answered.status_code == 200
    assert MARKER not in log.read_text(errors="replace")


@pytest.mark.parametrize(
    "content",
    ["", "   \n", [{"type": "text", "text": " "}], [{"type": "image_url", "image_url": {"url": "data:,"}}]],
    ids=["empty", "blank", "blank part", "image only"],
)
def test_an_empty_question_is_refused(server, content):
    url, _, _ = server
    error = openai_error(post(url, {"model": MODEL, "messages": [{"role": "user", "content": content}]}), 400)
    assert error["param"] == "messages" and "question" in error["message"] and "empty" in error["message"]

