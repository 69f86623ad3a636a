"""data_zh.openai_client against a real HTTP server on 127.0.0.1: the reply text, and every failure
as one line naming the URL and the status, never the prompt."""

from __future__ import annotations

import socket
import time

import pytest

from data_zh.openai_client import ChatError, NotAChatCompletionError, OpenAIClient
from tests.chat_server import chat_server, completion

PROMPT = "患者王某，右乳低回声结节，请判断良恶性"  # what must never appear in an error


def reply(path: str, headers: dict, body: dict) -> tuple[int, str]:
    """The model name picks the behaviour."""
    model = body["model"]
    if path != "/v1/chat/completions":
        return 404, '{"error": {"message": "no such route"}}'
    if model == "echo":
        auth = headers.get("Authorization", "")
        return 200, completion(f"{body['messages'][0]['content']}|{auth}|{body.get('max_tokens')}")
    if model == "slow":
        time.sleep(1.0)
        return 200, completion("late")
    if model == "busy":
        return 503, '{"error": {"message": "overloaded,\\n try again"}}'
    if model == "limited":
        return 429, '{"error": "rate limited"}'
    if model == "echo-error":  # a server that quotes the request back in an HTML error page
        return 400, f"<html>bad request: {body['messages'][0]['content']}</html>"
    if model == "garbled":
        return 200, "<html>upstream error</html>"
    if model == "no-content":
        return 200, '{"choices": [{"message": {"role": "assistant", "content": null}}]}'
    return 404, '{"error": {"message": "model ' + model + ' not found"}}'


@pytest.fixture(scope="module")
def server():
    with chat_server(reply) as (url, bodies):
        yield url, bodies


def test_the_reply_text_and_what_is_sent(server) -> None:
    url, bodies = server
    client = OpenAIClient(url + "/", api_key="sk-test", timeout_s=5)
    assert client.url == url + "/chat/completions"
    text = client.chat("echo", [{"role": "user", "content": PROMPT}], max_tokens=7, temperature=0)
    assert text == f"{PROMPT}|Bearer sk-test|7"
    assert bodies[-1] == {
        "model": "echo",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 7,
        "temperature": 0,
    }
    assert OpenAIClient(url).chat("echo", [{"role": "user", "content": "x"}]) == "x||None"  # no key: no header


@pytest.mark.parametrize(
    ("model", "timeout_s", "message", "status", "retryable", "kind"),
    [
        ("busy", 5.0, "HTTP 503: overloaded, try again", 503, True, ChatError),
        ("limited", 5.0, "HTTP 429: rate limited", 429, True, ChatError),
        ("missing", 5.0, "HTTP 404: model missing not found", 404, False, ChatError),
        ("echo-error", 5.0, "HTTP 400", 400, False, ChatError),
        ("garbled", 5.0, "HTTP 200 but not a chat completion (JSONDecodeError)", 200, True, NotAChatCompletionError),
        ("no-content", 5.0, "HTTP 200 but not a chat completion (content is NoneType)", 200, True, NotAChatCompletionError),
        ("slow", 0.2, "no reply within 0.2 s", None, True, ChatError),
    ],
)
def test_failures_are_one_line_naming_the_url_and_status(
    server, model: str, timeout_s: float, message: str, status: int | None, retryable: bool, kind: type
) -> None:
    url, _ = server
    client = OpenAIClient(url, timeout_s=timeout_s)
    with pytest.raises(kind) as raised:
        client.chat(model, [{"role": "user", "content": PROMPT}])
    error = raised.value
    assert str(error) == f"{url}/chat/completions: {message}"
    assert (error.url, error.status, error.retryable) == (client.url, status, retryable)
    assert PROMPT not in str(error) and "\n" not in str(error)


def test_a_closed_port_is_a_retryable_request_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    client = OpenAIClient(f"http://127.0.0.1:{port}/v1", timeout_s=2)
    with pytest.raises(ChatError) as raised:
        client.chat("any", [{"role": "user", "content": PROMPT}])
    assert str(raised.value) == f"http://127.0.0.1:{port}/v1/chat/completions: request failed (ConnectionError)"
    assert raised.value.retryable and raised.value.status is None
