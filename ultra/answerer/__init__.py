"""The one front door for answering: ``Answerer`` and the request/answer types it speaks.

See :mod:`ultra.answerer.answerer` for the design (batching, streaming, thread safety).
"""

from ultra.answerer.answerer import Answerer, check_projectors_trained
from ultra.answerer.blank import blank_like
from ultra.answerer.choice import MAX_CANDIDATES, CandidateError, Choice, check_candidates, softmax
from ultra.answerer.requests import (
    DEFAULT_MODEL,
    Answer,
    GenerationSettings,
    Likelihood,
    PromptTooLongError,
    Request,
    Turn,
    UntrainedModelError,
)
from ultra.answerer.streaming import AnswerStream

__all__ = [
    "DEFAULT_MODEL",
    "MAX_CANDIDATES",
    "Answer",
    "AnswerStream",
    "CandidateError",
    "Choice",
    "Answerer",
    "GenerationSettings",
    "Likelihood",
    "PromptTooLongError",
    "Request",
    "Turn",
    "UntrainedModelError",
    "blank_like",
    "check_candidates",
    "check_projectors_trained",
    "softmax",
]
