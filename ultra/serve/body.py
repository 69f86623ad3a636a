"""A request body to a ``ChatCompletionRequest``, or a 400 that says what is wrong without
quoting any of it (bodies carry prompts and images).

Checked before pydantic sees it: valid JSON (numbers Python can read, nesting the C parser can
follow), nesting at most ``MAX_DEPTH`` (the API needs six levels), and every string valid Unicode
(a lone UTF-16 surrogate such as ``\\ud800`` parses as JSON but cannot be tokenized or echoed).
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from ultra.serve.errors import bad_request
from ultra.serve.schemas import ChatCompletionRequest

MAX_DEPTH = 32


def _check_values(data: object) -> None:
    """Depth and strings, walked without recursion (a deep body must not deepen the stack)."""
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise bad_request(
                        "the request holds a string with a lone UTF-16 surrogate (\\ud800-\\udfff), "
                        "which is not valid Unicode text"
                    ) from None
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise bad_request(f"the request body is nested more than {MAX_DEPTH} levels deep")
            items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
            for key, item in items:
                if key is not None:
                    stack.append((key, depth + 1))
                stack.append((item, depth + 1))


def parse_body(raw: bytes) -> ChatCompletionRequest:
    """The body as a ``ChatCompletionRequest``; ``APIError`` (400) naming the problem, not the data."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise bad_request(
            f"the request body is not valid JSON ({error.msg} at position {error.pos})"
        ) from None
    except UnicodeDecodeError:
        raise bad_request("the request body is not valid JSON (not UTF-8)") from None
    except RecursionError:
        raise bad_request(f"the request body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError:  # e.g. an integer of more than 4300 digits
        raise bad_request("the request body holds a number too long to read") from None
    if not isinstance(data, dict):
        raise bad_request("the request body must be a JSON object")
    _check_values(data)
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        if first["type"] == "missing":
            raise bad_request(f"missing required field: {param}", param) from None
        raise bad_request(f"invalid field {param}: {first['msg']}", param) from None
