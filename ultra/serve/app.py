"""The FastAPI app of ``ultra serve``: ``/v1/models``, ``/v1/chat/completions`` (plain and SSE),
``/health``. Stateless between requests, so several processes can sit behind a load balancer.

Request bodies and images stay in memory: nothing here logs or writes them, and no error message
quotes them (a fault is logged as its type and stack, without its message, which may hold a
prompt). Each request reads its images through its own ``DecodeAccount`` drawn from the server's
one ``DecodeBudget``: decoded one at a time, shrunk at once to ``max_side``, given back once the
batch has encoded the request; past the server's budget the request is a 429. The research notice
travels beside the answer (the ``X-Research-Notice`` header, percent-encoded UTF-8, and a
``notice`` field), so streamed pieces concatenate to exactly the plain answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import traceback
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ultra import RESEARCH_NOTICE
from ultra.answerer import Answer, PromptTooLongError
from ultra.answerer import Request as AnswerRequest
from ultra.media import DEFAULT_LIMITS, DecodeBudget, MediaLimits
from ultra.serve.batcher import BatchedStream, DynamicBatcher
from ultra.serve.body import parse_body
from ultra.serve.errors import APIError, bad_request
from ultra.serve.memory import release_freed_memory
from ultra.serve.messages import ImageReader, candidates_for, to_request
from ultra.serve.schemas import ModelCard, ModelList

logger = logging.getLogger(__name__)

NOTICE_HEADER = "X-Research-Notice"
NOTICE_HEADERS = {NOTICE_HEADER: quote(RESEARCH_NOTICE)}


MB = 1 << 20


@dataclass(frozen=True)
class ServeOptions:
    """What the server accepts: its model's id, the image limit, the key, the media limits, the
    longest image side its model needs (``None``: images kept as sent), and the decoded bytes one
    request and all requests together may hold (a full 64 M-pixel RGBA image needs 256 MB while
    it is decoded), and the largest body read (its images base64-encoded)."""

    model_id: str
    max_images: int = 8
    api_key: str | None = None
    limits: MediaLimits = DEFAULT_LIMITS
    max_side: int | None = None
    request_image_bytes: int = 512 * MB
    server_image_bytes: int = 2048 * MB
    max_body_bytes: int = 128 * MB


def _usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }


def log_fault(what: str, error: BaseException) -> None:
    """A server fault: its type and where it happened; not its message (it may quote a prompt)."""
    stack = "".join(traceback.format_tb(error.__traceback__))
    logger.error("%s: %s\n%s", what, type(error).__name__, stack.rstrip())


async def _read_body(http: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to pass ``limit`` bytes, never read whole."""
    too_large = APIError(413, f"the request body is larger than {limit // MB} MB", code="request_too_large")
    declared = http.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in http.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _stream_for(future: Future) -> BatchedStream:
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:  # the client left: release its place once the batch starts
        future.add_done_callback(lambda done: done.exception() or done.result().close())
        raise
    except PromptTooLongError as error:
        raise bad_request(str(error), "messages", "context_length_exceeded") from None
    except ValueError as error:
        logger.debug("a request failed to encode: %s", type(error).__name__)
        raise bad_request("the model could not encode these messages", "messages") from None


async def _scored(batcher: DynamicBatcher, request: AnswerRequest, candidates: tuple[str, ...]) -> list:
    """``[{text, logprob, probability}]`` of the closed answers (``Answerer.choose``, T = 1)."""
    try:
        choice = await anyio.to_thread.run_sync(batcher.answerer.choose, request, candidates)
    except PromptTooLongError as error:
        raise bad_request(str(error), "candidates", "context_length_exceeded") from None
    return choice.as_dicts()


async def _next_piece(stream: BatchedStream) -> str | None:
    return await anyio.to_thread.run_sync(next, stream, None)


def create_app(batcher: DynamicBatcher, options: ServeOptions) -> FastAPI:
    """The API over one batcher (and its ``Answerer``)."""
    app = FastAPI(title="ultra serve", docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())
    budget = DecodeBudget(options.server_image_bytes)

    @app.exception_handler(APIError)
    async def api_error(_: Request, error: APIError) -> JSONResponse:
        return error.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        kind = "invalid_request_error" if error.status_code < 500 else "server_error"
        return APIError(error.status_code, str(error.detail), type=kind).response()

    @app.middleware("http")
    async def server_error(request: Request, call_next):
        """Faults end here as a 500, so nothing below logs their message with the traceback."""
        try:
            return await call_next(request)
        except Exception as error:
            log_fault("internal error", error)
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
            "images": {"decoded_bytes_held": budget.held, "decoded_bytes_budget": budget.max_bytes},
            "notice": RESEARCH_NOTICE,
        }

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return ModelList(data=[ModelCard(id=options.model_id, created=created)]).model_dump()

    @app.post("/v1/chat/completions")
    async def chat_completions(http: Request):
        account = budget.account(options.request_image_bytes)
        try:
            with batcher.receiving() as submit:
                body = parse_body(await _read_body(http, options.max_body_bytes))
                if body.model != options.model_id:
                    raise APIError(
                        404,
                        f"the model requested does not exist here; this server has {options.model_id!r}",
                        param="model",
                        code="model_not_found",
                    )
                candidates = candidates_for(body)
                reader = ImageReader(options.limits, options.max_side, account)
                request = await anyio.to_thread.run_sync(to_request, body, options.max_images, reader)
                streamed = body.stream
                include_usage = bool(body.stream_options and body.stream_options.include_usage)
                del body  # its data: URLs, decoded already, go before the memory is trimmed
                future = submit(request)
            stream = await _stream_for(future)  # encoded: its pixels are tensors of the batch now
        finally:
            account.close()
            if account.peak:
                await anyio.to_thread.run_sync(release_freed_memory)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if streamed:
            events = _sse(stream, completion_id, options.model_id, include_usage)
            return StreamingResponse(events, media_type="text/event-stream", headers=NOTICE_HEADERS)
        try:
            text = await anyio.to_thread.run_sync(lambda: "".join(stream))
        finally:
            stream.close()
        answer = stream.answer
        if answer is None or answer.text != text:
            raise RuntimeError("the answer stream ended without its answer")
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": answer.text},
            "finish_reason": answer.finish_reason,
        }
        if candidates is not None:
            choice["candidates"] = await _scored(batcher, request, candidates)
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": options.model_id,
                "choices": [choice],
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
            log_fault("generation failed", error)
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
