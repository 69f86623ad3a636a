"""One streamed reply in a tab's chat: shown as it grows, then kept as two turns for the next question."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from ultra.answerer import Answerer, Request, Turn


class ChatLike(Protocol):
    turns: list[Turn]
    messages: list[dict[str, Any]]


def stream_reply(answerer: Answerer, request: Request, state: ChatLike) -> Iterator[None]:
    """Append the question and a growing answer to ``state.messages`` (yielding after each piece),
    then record the exchange in ``state.turns`` (the question's images stay with the request)."""
    state.messages += [{"role": "user", "content": request.question}, {"role": "assistant", "content": ""}]
    answer = ""
    for piece in answerer.stream(request):
        answer += piece
        state.messages[-1] = {"role": "assistant", "content": answer}
        yield
    state.turns += [Turn("user", request.question), Turn("assistant", answer)]
