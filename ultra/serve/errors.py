"""Errors in the OpenAI shape ``{"error": {"message", "type", "param", "code"}}``.

Bad input is a 4xx with a message naming what was wrong; a 5xx means a fault of the server. The
message never echoes request bodies or image data (they may carry patient information).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


class APIError(Exception):
    """An error the client should see, with its HTTP status and OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers = headers
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def rate_limited(message: str, retry_after_s: int = 1) -> APIError:
    """A 429 as OpenAI sends one (``rate_limit_exceeded``), with ``Retry-After``."""
    return APIError(
        429, message, type="requests", code="rate_limit_exceeded", headers={"Retry-After": str(retry_after_s)}
    )
