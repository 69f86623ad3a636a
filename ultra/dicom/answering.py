"""Answer questions on the kept images of each study with the ultra model, batched."""

from __future__ import annotations

import logging
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "tiny-zh"


class UntrainedModelError(RuntimeError):
    """The model's projectors were never trained, so its answers would be noise."""


def answerer_from_model(model: Any, processor: Any, *, batch_size: int = 8, max_new_tokens: int = 32):
    """An ``Answerer`` over a loaded (model, processor) pair using ``ultra.inference``."""
    from ultra.inference import VQARequest, generate_answers

    def answer(requests: list[tuple[list[Image.Image], str]]) -> list[str]:
        batch = [VQARequest(images=images, question=question) for images, question in requests]
        logger.info("answering %d (study, question) pairs in batches of %d", len(batch), batch_size)
        return generate_answers(model, processor, batch, batch_size=batch_size, max_new_tokens=max_new_tokens)

    return answer


def load_answerer(
    model_name: str | None = None,
    *,
    allow_untrained: bool = False,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    device: str = "cpu",
):
    """Load a model by preset name or folder (default: the embedded model) as an answerer.

    A model whose projectors were never trained is refused unless ``allow_untrained`` is set.
    """
    from ultra.model import load_model

    name = model_name or DEFAULT_MODEL
    model, processor = load_model(name, device=device)
    if not getattr(model.config, "projectors_trained", False):
        if not allow_untrained:
            raise UntrainedModelError(
                f"model {name!r} is untrained (random projectors); pass --allow-untrained"
            )
        logger.warning("model %s is untrained: its answers are not meaningful", name)
    return answerer_from_model(model, processor, batch_size=batch_size, max_new_tokens=max_new_tokens)
