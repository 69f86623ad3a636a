"""Answer questions on the kept images of each study with the ultra model, batched."""

from __future__ import annotations

import logging
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)


def answerer_from_model(model: Any, processor: Any, *, batch_size: int = 8, max_new_tokens: int = 32):
    """An ``Answerer`` over a loaded (model, processor) pair using ``ultra.inference``."""
    from ultra.inference import VQARequest, generate_answers

    def answer(requests: list[tuple[list[Image.Image], str]]) -> list[str]:
        batch = [VQARequest(images=images, question=question) for images, question in requests]
        logger.info("answering %d (study, question) pairs in batches of %d", len(batch), batch_size)
        return generate_answers(model, processor, batch, batch_size=batch_size, max_new_tokens=max_new_tokens)

    return answer


def load_answerer(
    model_name: str | None, *, batch_size: int = 8, max_new_tokens: int = 32, **load_kwargs: Any
):
    """Load a model by preset name or folder (None = the embedded default) and wrap it as an answerer."""
    from ultra.model import load_model

    model, processor = load_model(model_name, **load_kwargs) if model_name else load_model(**load_kwargs)
    return answerer_from_model(model, processor, batch_size=batch_size, max_new_tokens=max_new_tokens)
