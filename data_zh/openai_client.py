"""One client for OpenAI-compatible ``/chat/completions`` endpoints (``ultra serve``, vLLM, Ollama,
OpenAI), used by QA generation and the self-training judge.

Every failure is one ``ChatError`` whose one-line message names the URL and, when the server
answered, the HTTP status (and the server's own error message, cut short); the request is never
quoted, so prompts and images do not end up in logs. ``retryable`` tells a caller whether asking
again can help: timeouts, lost connections, 429 and 5xx can, other 4xx cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

DETAIL_CHARS = 200


class ChatError(RuntimeError):
    """A chat request that produced no reply text."""

    def __init__(self, message: str, url: str, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.retryable = retryable


class NotAChatCompletionError(ChatError):
    """The server answered 2xx with something that is not a chat completion."""


def _server_detail(response: requests.Response) -> str:
    """The server's own error message from a JSON error body, on one short line ('' if none)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    if not message:
        message = body.get("detail") if isinstance(body, dict) and isinstance(body.get("detail"), str) else None
    if not message:
        return ""
    line = " ".join(str(message).split())
    return line if len(line) <= DETAIL_CHARS else line[: DETAIL_CHARS - 1] + "…"


@dataclass(frozen=True)
class OpenAIClient:
    """``base_url`` is the API root (``http://127.0.0.1:8000/v1``); ``api_key`` goes in a Bearer
    header when set; ``timeout_s`` bounds connecting and each wait for the reply."""

    base_url: str
    api_key: str | None = None
    timeout_s: float = 60.0

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def chat(self, model: str, messages: list[dict[str, Any]], **options: Any) -> str:
        """The first choice's message text; ``options`` (``max_tokens``, ``temperature``, …) go
        into the request body as they are."""
        url = self.url
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": model, "messages": messages, **options}
        try:
            response = requests.post(url, json=body, headers=headers, timeout=self.timeout_s)
        except requests.Timeout:
            raise ChatError(f"{url}: no reply within {self.timeout_s:g} s", url) from None
        except requests.RequestException as error:
            raise ChatError(f"{url}: request failed ({type(error).__name__})", url) from None
        status = response.status_code
        if status >= 400:
            detail = _server_detail(response)
            raise ChatError(
                f"{url}: HTTP {status}" + (f": {detail}" if detail else ""),
                url,
                status,
                retryable=status >= 500 or status == 429,
            )
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise NotAChatCompletionError(
                f"{url}: HTTP {status} but not a chat completion ({type(error).__name__})", url, status
            ) from None
        if not isinstance(content, str):
            raise NotAChatCompletionError(
                f"{url}: HTTP {status} but not a chat completion (content is {type(content).__name__})",
                url,
                status,
            )
        return content
