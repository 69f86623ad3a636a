"""What QA generation reads: texts (transcripts, reports) with the record they belong to, if any.

An input JSONL line is either a unified record (its text: ``extra["report"]``, else its answer —
e.g. the BUSI builders' Chinese impressions; the generated QA keep its media, licence and split) or
a plain text object ``{"id", "text", "language"?, "source"?, "licence"?, "specialty"?}``.
A bad line is logged with file and line number and skipped; the rest still run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from data_zh.io import jsonl_lines, parse_json_bytes
from data_zh.schema import Record

logger = logging.getLogger(__name__)


class TextInput(BaseModel):
    """A plain text to generate QA from."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    language: Literal["zh", "en"] = "zh"
    source: str = "qagen_input"
    licence: str = "unknown"
    specialty: str = "general"


@dataclass(frozen=True)
class QASource:
    """One input: its id, its text, and the record whose media the QA belong to (None: text only)."""

    id: str
    text: str
    record: Record | None = None
    meta: TextInput | None = None


def source_of(item: dict) -> QASource:
    """An input line as a QASource; ``ValueError`` says why it is neither a record nor a text."""
    if "text" in item:
        meta = TextInput.model_validate(item)
        return QASource(meta.id, meta.text, meta=meta)
    record = Record.model_validate(item)
    text = record.extra.get("report") or record.answer
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"record {record.id} has no report or answer text")
    return QASource(record.id, text, record=record)


def read_sources(path: str | Path) -> list[QASource]:
    """Every readable input of a JSONL file (bad lines logged by line number and skipped)."""
    sources: list[QASource] = []
    for line_no, line in jsonl_lines(path):
        try:
            item = parse_json_bytes(line)
            if not isinstance(item, dict):
                raise ValueError("not a JSON object")
            sources.append(source_of(item))
        except (ValueError, ValidationError) as error:
            first = str(error).splitlines()[0]
            logger.warning("%s:%d: skipped input: %s", path, line_no, first)
    return sources
