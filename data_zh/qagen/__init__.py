"""Two-stage QA generation from expert text (LLaVA-Surg): facts as JSON, then QA from the facts only."""

from data_zh.qagen.backends import (
    BACKENDS,
    BackendError,
    BackendOptions,
    OpenAIBackend,
    ReplayBackend,
    TextBackend,
    TransformersBackend,
    backend_from_spec,
)
from data_zh.qagen.facts import FACT_KINDS, Facts, QADraft, QADrafts, parse_json_reply
from data_zh.qagen.guard import MIN_SUPPORT, GuardVerdict, check_support, content_words
from data_zh.qagen.inputs import QASource, TextInput, read_sources
from data_zh.qagen.pipeline import MAX_ATTEMPTS, QAGenReport, generate_qa, log_path_for
from data_zh.qagen.prompts import Prompts

__all__ = [
    "BACKENDS",
    "FACT_KINDS",
    "MAX_ATTEMPTS",
    "MIN_SUPPORT",
    "BackendError",
    "BackendOptions",
    "Facts",
    "GuardVerdict",
    "OpenAIBackend",
    "Prompts",
    "QADraft",
    "QADrafts",
    "QAGenReport",
    "QASource",
    "ReplayBackend",
    "TextBackend",
    "TextInput",
    "TransformersBackend",
    "backend_from_spec",
    "check_support",
    "content_words",
    "generate_qa",
    "log_path_for",
    "parse_json_reply",
    "read_sources",
]
