"""Answer questions on the kept images of each study through the front door (``ultra.Answerer``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from ultra.answerer import DEFAULT_MODEL, Answerer, GenerationSettings, Request

logger = logging.getLogger(__name__)

StudyQuestions = list[tuple[list[Image.Image], str]]


def study_answerer(
    answerer: Answerer, *, batch_size: int = 8, max_new_tokens: int = 32
) -> Callable[[StudyQuestions], list[str]]:
    """The batch pipeline's answering seam: (images, question) pairs in, answer texts out."""
    settings = GenerationSettings(max_new_tokens=max_new_tokens)

    def answer(pairs: StudyQuestions) -> list[str]:
        requests = [Request(question, list(images), settings=settings) for images, question in pairs]
        logger.info("answering %d (study, question) pairs in batches of %d", len(requests), batch_size)
        return [result.text for result in answerer.answer(requests, batch_size=batch_size)]

    return answer


def load_answerer(
    model_name: str | Path | None = None,
    *,
    allow_untrained: bool = False,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    device: str = "cpu",
) -> Callable[[StudyQuestions], list[str]]:
    """The study answerer of a preset or model folder (default: the embedded model)."""
    answerer = Answerer.load(model_name or DEFAULT_MODEL, device=device, allow_untrained=allow_untrained)
    return study_answerer(answerer, batch_size=batch_size, max_new_tokens=max_new_tokens)
