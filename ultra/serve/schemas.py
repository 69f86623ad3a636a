"""The OpenAI chat-completions wire format (the part this server speaks), as pydantic models.

Unknown request fields are accepted and ignored, as OpenAI-compatible servers do, so clients that
send ``user``, ``logprobs: false`` and the like keep working. Numbers are bounded here (``seed`` a
signed 64-bit integer, as the samplers take it), so a value out of range is a 400, never a fault
of generation after the stream has started.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ImageURL(BaseModel):
    url: str
    detail: str | None = None


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = TextPart | ImagePart


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    top_p: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    n: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    # ultra's extension: probabilities of closed answers (choices[0].candidates in the response)
    candidates: list[str] | None = Field(
        default=None,
        description="closed answers to score (at most 16 non-empty strings): the response's "
        "choices[0].candidates gives each one's summed log-likelihood and softmax probability",
    )
    choose: str | None = Field(
        default=None,
        description="a candidate-set name (lesion, malignancy, site, birads, histology): its "
        "answers, in the question's language, are the candidates",
    )


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ultra"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
