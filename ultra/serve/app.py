"""The FastAPI app of ``ultra serve``: ``/v1/models``, ``/v1/chat/completions`` (plain and SSE),
``/health``. Stateless between requests, so several processes can sit behind a load balancer.

Request bodies and images stay in memory: nothing here logs or writes them. The research notice
travels beside the answer (the ``X-Research-Notice`` header, percent-encoded UTF-8, and a
``notice`` field), so streamed pieces concatenate to exactly the plain answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ultra import RESEARCH_NOTICE
from ultra.answerer import Answer, PromptTooLongError
from ultra.media import DEFAULT_LIMITS, MediaLimits
from ultra.serve.batcher import BatchedStream, DynamicBatcher
from ultra.serve.errors import APIError, bad_request
from ultra.serve.messages import to_request
from ultra.serve.schemas import ChatCompletionRequest, ModelCard, ModelList

logger = logging.getLogger(__name__)

NOTICE_HEADER = "X-Research-Notice"
NOTICE_HEADERS = {NOTICE_HEADER: quote(RESEARCH_NOTICE)}


@dataclass(frozen=True)
class ServeOptions:
    """What the server accepts: its model's id, the image limit, the key, the media limits."""

    model_id: str
    max_images: int = 8
    api_key: str | None = None
    limits: MediaLimits = DEFAULT_LIMITS


def _usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }


def _parse_body(raw: bytes) -> ChatCompletionRequest:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise bad_request(
            f"the request body is not valid JSON ({error.msg} at position {error.pos})"
        ) from None
    except UnicodeDecodeError:
        raise bad_request("the request body is not valid JSON (not UTF-8)") from None
    if not isinstance(data, dict):
        raise bad_request("the request body must be a JSON object")
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        if first["type"] == "missing":
            raise bad_request(f"missing required field: {param}", param) from None
        raise bad_request(f"invalid field {param}: {first['msg']}", param) from None


async def _stream_for(future: Future) -> BatchedStream:
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:  # the client left: release its place once the batch starts
        future.add_done_callback(lambda done: done.exception() or done.result().close())
        raise
    except PromptTooLongError as error:
        raise bad_request(str(error), "messages", "context_length_exceeded") from None
    except ValueError as error:
        raise bad_request(str(error), "messages") from None


async def _next_piece(stream: BatchedStream) -> str | None:
    return await anyio.to_thread.run_sync(next, stream, None)


def create_app(batcher: DynamicBatcher, options: ServeOptions) -> FastAPI:
    """The API over one batcher (and its ``Answerer``)."""
    app = FastAPI(title="ultra serve", docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())

    @app.exception_handler(APIError)
    async def api_error(_: Request, error: APIError) -> JSONResponse:
        return error.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        kind = "invalid_request_error" if error.status_code < 500 else "server_error"
        return APIError(error.status_code, str(error.detail), type=kind).response()

    @app.exception_handler(Exception)
    async def server_error(_: Request, error: Exception) -> JSONResponse:
        logger.error("internal error: %s", type(error).__name__, exc_info=error)
        return APIError(500, "internal server error", type="server_error").response()

    @app.middleware("http")
    async def check_key(request: Request, call_next):
        if options.api_key and request.url.path.startswith("/v1/"):
            given = request.headers.get("authorization", "")
            expected = f"Bearer {options.api_key}"
            if not secrets.compare_digest(given.encode(), expected.encode()):
                return APIError(
                    401, "invalid or missing API key (Authorization: Bearer <key>)", code="invalid_api_key"
                ).response()
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": options.model_id,
            "batching": batcher.stats(),
            "notice": RESEARCH_NOTICE,
        }

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return ModelList(data=[ModelCard(id=options.model_id, created=created)]).model_dump()

    @app.post("/v1/chat/completions")
    async def chat_completions(http: Request):
        with batcher.receiving() as submit:
            body = _parse_body(await http.body())
            if body.model != options.model_id:
                raise APIError(
                    404,
                    f"the model {body.model!r} does not exist here; this server has {options.model_id!r}",
                    param="model",
                    code="model_not_found",
                )
            request = await anyio.to_thread.run_sync(to_request, body, options.max_images, options.limits)
            future = submit(request)
        stream = await _stream_for(future)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = _sse(stream, completion_id, options.model_id, include_usage)
            return StreamingResponse(events, media_type="text/event-stream", headers=NOTICE_HEADERS)
        try:
            text = await anyio.to_thread.run_sync(lambda: "".join(stream))
        finally:
            stream.close()
        answer = stream.answer
        if answer is None or answer.text != text:
            raise RuntimeError("the answer stream ended without its answer")
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": options.model_id,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer.text},
                        "finish_reason": answer.finish_reason,
                    }
                ],
                "usage": _usage(answer),
                "notice": RESEARCH_NOTICE,
            },
            headers=NOTICE_HEADERS,
        )

    return app


def _event(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


async def _sse(
    stream: BatchedStream, completion_id: str, model: str, include_usage: bool
) -> AsyncIterator[str]:
    """``data: {chunk}`` events: the role (with the notice), each piece, the finish reason, the
    usage when asked, then ``data: [DONE]``."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }

    try:
        yield _event(chunk({"role": "assistant", "content": ""}, notice=RESEARCH_NOTICE))
        try:
            while (piece := await _next_piece(stream)) is not None:
                yield _event(chunk({"content": piece}))
        except Exception as error:  # generation failed after the headers were sent
            logger.error("generation failed: %s", type(error).__name__, exc_info=error)
            yield _event(APIError(500, "generation failed", type="server_error").body())
            yield _event("[DONE]")
            return
        answer = stream.answer
        if answer is None:
            raise RuntimeError("the answer stream ended without its answer")
        yield _event(chunk({}, answer.finish_reason))
        if include_usage:
            yield _event({**chunk({}), "choices": [], "usage": _usage(answer)})
        yield _event("[DONE]")
    finally:
        stream.close()
