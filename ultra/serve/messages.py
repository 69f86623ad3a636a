"""OpenAI chat messages to one ``ultra.Request``: earlier messages become ``history`` (user turns
with their own images), the last user message the question. Images are read by ``ultra.media``
(base64 ``data:`` URLs only; http(s) URLs are refused, the server may have no internet), one at a
time, each shrunk at once to what the model needs and held in the request's decode account.

Errors name the field (``messages[2].content[1].image_url``) and the reason, never the text or
the image they are about.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from data_zh.candidates import CANDIDATE_SETS
from data_zh.text.cjk import has_cjk
from ultra.answerer import CandidateError, GenerationSettings, Request, Turn, check_candidates
from ultra.media import DEFAULT_LIMITS, DecodeAccount, DecodeBudgetError, MediaError, MediaLimits, read_image
from ultra.model.tokenizer import IMAGE_TOKEN, VIDEO_TOKEN
from ultra.serve.errors import APIError, bad_request, rate_limited
from ultra.serve.schemas import ChatCompletionRequest, ChatMessage, ImagePart

DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class ImageReader:
    """How a request's images are read: the limits, the longest side the model needs (``None``:
    kept as sent) and the request's account of decoded bytes."""

    limits: MediaLimits = DEFAULT_LIMITS
    max_side: int | None = None
    account: DecodeAccount | None = None

    def read(self, url: str, param: str) -> Image.Image:
        try:
            return read_image(
                url, limits=self.limits, source_id=param, max_side=self.max_side, account=self.account
            )
        except DecodeBudgetError as error:
            if error.shared:
                raise rate_limited(
                    f"{param}: the server is decoding as many images as it holds at once; retry shortly"
                ) from None
            raise bad_request(f"{param}: {error.reason}", param, "image_too_large") from None
        except MediaError as error:
            raise bad_request(
                f"{param}: the image could not be read: {error.reason}", param, "invalid_image"
            ) from None


def _check_texts(body: ChatCompletionRequest) -> None:
    """No text may hold the image or video placeholder (it would take an image's place)."""
    for index, message in enumerate(body.messages):
        if isinstance(message.content, str):
            texts = [(f"messages[{index}].content", message.content)]
        else:
            texts = [
                (f"messages[{index}].content[{part_index}]", part.text)
                for part_index, part in enumerate(message.content or [])
                if not isinstance(part, ImagePart)
            ]
        for param, text in texts:
            for token in (IMAGE_TOKEN, VIDEO_TOKEN):
                if token in text:
                    raise bad_request(
                        f"{param}: the text holds {token}, which this server reserves for images; "
                        "send images as image_url parts",
                        param,
                    )


def _message_parts(message: ChatMessage, index: int, reader: ImageReader) -> tuple[str, list[Image.Image]]:
    if message.content is None:
        return "", []
    if isinstance(message.content, str):
        return message.content, []
    texts, images = [], []
    for part_index, part in enumerate(message.content):
        param = f"messages[{index}].content[{part_index}]"
        if not isinstance(part, ImagePart):
            texts.append(part.text)
            continue
        param += ".image_url"
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
        images.append(reader.read(url, param))
    return "\n".join(texts), images


def settings_from(body: ChatCompletionRequest) -> GenerationSettings:
    """Greedy unless a temperature is sent (OpenAI defaults to 1; answers here should be reproducible)."""
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    if any(not s for s in stop):
        raise bad_request("stop strings must not be empty", "stop")
    try:
        return GenerationSettings(
            max_new_tokens=body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=0.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            stop=stop,
            seed=body.seed,
        )
    except ValueError:
        raise bad_request("invalid generation settings (max_tokens, temperature, top_p, stop)") from None


def _image_count(body: ChatCompletionRequest) -> int:
    return sum(
        1
        for message in body.messages
        if isinstance(message.content, list)
        for part in message.content
        if isinstance(part, ImagePart)
    )


def to_request(body: ChatCompletionRequest, max_images: int, reader: ImageReader) -> Request:
    """The ``Request`` for a chat-completions body; ``APIError`` (400, 429) for anything unusable.

    Everything but the images is checked first, so a bad request decodes nothing.
    """
    if body.n not in (None, 1):
        raise bad_request("only n=1 is supported", "n")
    if _image_count(body) > max_images:
        raise bad_request(f"At most {max_images} image(s) may be provided in one prompt.", "messages")
    last = body.messages[-1]
    if last.role != "user":
        raise bad_request("the last message must be a user message (the question)", "messages")
    if not _question_text(last).strip():
        raise bad_request("the question (the text of the last user message) is empty", "messages")
    _check_texts(body)
    settings = settings_from(body)
    history = []
    for index, message in enumerate(body.messages[:-1]):
        text, images = _message_parts(message, index, reader)
        role = "system" if message.role == "developer" else message.role
        history.append(Turn(role, text, images))
    question, images = _message_parts(last, len(body.messages) - 1, reader)
    try:
        return Request(question, images, history=history, settings=settings)
    except ValueError:
        raise bad_request("the messages do not form a request this server can answer", "messages") from None


def candidates_for(body: ChatCompletionRequest) -> tuple[str, ...] | None:
    """The closed answers to score (``candidates``, or the ``choose`` set in the question's
    language), checked before any image is read; None when neither is sent."""
    if body.candidates is not None and body.choose is not None:
        raise bad_request("send candidates or choose, not both", "candidates")
    if body.stream and (body.candidates is not None or body.choose is not None):
        raise bad_request("candidates are not scored in streamed answers; send stream: false", "candidates")
    if body.choose is not None:
        if body.choose not in CANDIDATE_SETS:
            raise bad_request(f"choose must be one of: {', '.join(CANDIDATE_SETS.names())}", "choose")
        language = "zh" if has_cjk(_question_text(body.messages[-1])) else "en"
        return CANDIDATE_SETS[body.choose].candidates(language)
    if body.candidates is None:
        return None
    try:
        return check_candidates(body.candidates)
    except CandidateError as error:
        raise bad_request(str(error), "candidates") from None


def _question_text(message: ChatMessage) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "".join(part.text for part in message.content if not isinstance(part, ImagePart))


__all__ = ["APIError", "ImageReader", "candidates_for", "settings_from", "to_request"]
