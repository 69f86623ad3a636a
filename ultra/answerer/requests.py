"""What a caller asks and what it gets back: requests, generation settings, answers, errors.

Plain dataclasses with no torch in them, so servers and CLIs can build requests before (or
without) loading a model. Media are already-decoded PIL images: reading files, bytes and URLs
is ``ultra.media``'s job, never the front door's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

from ultra.resources import DEFAULT_MODEL as DEFAULT_MODEL  # kept light, so the CLI needs no torch

FinishReason = Literal["stop", "length"]
Role = Literal["system", "user", "assistant"]


class UntrainedModelError(RuntimeError):
    """A model whose image projectors were never trained (its answers would ignore the image)."""


class PromptTooLongError(ValueError):
    """The prompt (history, images and question) leaves no room to answer within the context."""

    def __init__(self, prompt_tokens: int, context_length: int) -> None:
        super().__init__(
            f"the prompt is {prompt_tokens} tokens but the model's context holds {context_length}; "
            "shorten the question or history, or send fewer images"
        )
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


@dataclass(frozen=True)
class GenerationSettings:
    """How to generate one answer. ``temperature == 0`` means greedy decoding.

    Requests that differ in ``temperature``, ``top_p`` or ``seed`` are generated in separate
    groups (those are per-``generate`` settings); ``max_new_tokens`` and ``stop`` are applied per
    request inside one batched generate, so they never split a batch.
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if any(not s for s in self.stop):
            raise ValueError("stop strings must not be empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def group_key(self) -> tuple:
        """Requests with equal keys share one ``generate`` call."""
        if self.greedy:
            return ("greedy",)
        return ("sample", self.temperature, self.top_p, self.seed)


@dataclass
class Turn:
    """One earlier turn of a chat; a user turn may carry its own images."""

    role: Role
    text: str
    images: list[Image.Image] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant"):
            raise ValueError(f"unknown chat role {self.role!r} (expected system, user or assistant)")
        if self.images and self.role != "user":
            raise ValueError(f"only user turns carry images, not {self.role!r} turns")


@dataclass
class Request:
    """One question about zero or more images (or a video clip's frames), after earlier turns.

    ``image_weights`` (one per image of this turn) is the screening seam: weights are normalised
    to sum to 1 and each image's fused tokens (its decision token too, if the tower has one: a
    down-weighted image's decision counts less) are scaled by ``w_i * N``, so equal weights change
    nothing; ``None`` (the default) leaves the tokens untouched. ``blank_images`` swaps every image
    for the blank image (the blind-image check).
    """

    question: str
    images: list[Image.Image] = field(default_factory=list)
    video_frames: list[Image.Image] | None = None
    history: list[Turn] = field(default_factory=list)
    image_weights: list[float] | None = None
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    blank_images: bool = False

    def __post_init__(self) -> None:
        if self.image_weights is not None:
            if len(self.image_weights) != len(self.images):
                raise ValueError(
                    f"{len(self.image_weights)} image weights given for {len(self.images)} images"
                )
            if any(w < 0 or not math.isfinite(w) for w in self.image_weights) or sum(self.image_weights) <= 0:
                raise ValueError(f"image weights must be finite, >= 0 and not all zero: {self.image_weights}")
        if self.video_frames is not None and not self.video_frames:
            raise ValueError("a video request needs at least one frame")

    @property
    def all_images(self) -> list[Image.Image]:
        """Every image in placeholder order: earlier user turns first, then this turn's."""
        return [image for turn in self.history for image in turn.images] + list(self.images)


@dataclass(frozen=True)
class Answer:
    """A generated answer with the numbers an API reports (``usage``, ``finish_reason``)."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Likelihood:
    """``log p(text | request)``: the summed log-probability of the text's tokens, and their count."""

    total: float
    tokens: int

    @property
    def mean(self) -> float:
        return self.total / self.tokens if self.tokens else 0.0
