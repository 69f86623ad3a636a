"""OpenAI chat messages to one ``ultra.Request``: earlier messages become ``history`` (user turns
with their own images), the last user message the question. Images are read by ``ultra.media``
(base64 ``data:`` URLs only; http(s) URLs are refused, the server may have no internet)."""

from __future__ import annotations

from PIL import Image

from ultra.answerer import GenerationSettings, Request, Turn
from ultra.media import MediaError, MediaLimits, read_image
from ultra.serve.errors import APIError, bad_request
from ultra.serve.schemas import ChatCompletionRequest, ChatMessage, ImagePart

DEFAULT_MAX_TOKENS = 256


def _message_parts(message: ChatMessage, index: int, limits: MediaLimits) -> tuple[str, list[Image.Image]]:
    if message.content is None:
        return "", []
    if isinstance(message.content, str):
        return message.content, []
    texts, images = [], []
    for part_index, part in enumerate(message.content):
        if not isinstance(part, ImagePart):
            texts.append(part.text)
            continue
        param = f"messages[{index}].content[{part_index}].image_url"
        url = part.image_url.url
        if message.role != "user":
            raise bad_request(f"only user messages may carry images, not {message.role} messages", param)
        if url[:7].lower() == "http://" or url[:8].lower() == "https://":
            raise bad_request(
                "http(s) image URLs are not fetched (this server may have no internet); "
                "send the image inline as a base64 data: URL (data:image/png;base64,...)",
                param,
                "image_url_not_supported",
            )
        if url[:5].lower() != "data:":
            raise bad_request("image_url must be a base64 data: URL (data:image/png;base64,...)", param)
        try:
            images.append(read_image(url, limits=limits, source_id=param))
        except MediaError as error:
            raise bad_request(
                f"{param}: the image could not be read: {error.reason}", param, "invalid_image"
            ) from None
    return "\n".join(texts), images


def settings_from(body: ChatCompletionRequest) -> GenerationSettings:
    """Greedy unless a temperature is sent (OpenAI defaults to 1; answers here should be reproducible)."""
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    try:
        return GenerationSettings(
            max_new_tokens=body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=0.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            stop=stop,
            seed=body.seed,
        )
    except ValueError as error:
        raise bad_request(str(error)) from None


def to_request(body: ChatCompletionRequest, max_images: int, limits: MediaLimits) -> Request:
    """The ``Request`` for a chat-completions body; ``APIError`` (400) for anything unusable."""
    if body.n not in (None, 1):
        raise bad_request("only n=1 is supported", "n")
    count = sum(
        1
        for message in body.messages
        if isinstance(message.content, list)
        for part in message.content
        if isinstance(part, ImagePart)
    )
    if count > max_images:
        raise bad_request(f"At most {max_images} image(s) may be provided in one prompt.", "messages")
    last = body.messages[-1]
    if last.role != "user":
        raise bad_request("the last message must be a user message (the question)", "messages")
    history = []
    for index, message in enumerate(body.messages[:-1]):
        text, images = _message_parts(message, index, limits)
        role = "system" if message.role == "developer" else message.role
        history.append(Turn(role, text, images))
    question, images = _message_parts(last, len(body.messages) - 1, limits)
    try:
        return Request(question, images, history=history, settings=settings_from(body))
    except ValueError as error:
        raise bad_request(str(error), "messages") from None


__all__ = ["APIError", "settings_from", "to_request"]
