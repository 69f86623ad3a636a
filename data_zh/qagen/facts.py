"""The JSON the two stages must return, validated with pydantic (a reply that fails is retried).

Stage 1 returns LLaVA-Surg's four kinds of facts, stored as ``Reasoning.observations`` … ``deductions``;
stage 2 returns QA pairs that each cite one fact as ``kind:index``.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from data_zh.schema import Reasoning

FACT_KINDS = ("observations", "reasons", "plans", "deductions")
_FACT_TAG = re.compile(r"^\s*(?P<kind>[a-z]+)\s*:\s*(?P<index>\d+)\s*$")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


class Facts(BaseModel):
    """Stage 1: every kind must be present (an empty list when the text has none); extra keys ignored."""

    model_config = ConfigDict(extra="ignore")

    observations: list[str]
    reasons: list[str]
    plans: list[str]
    deductions: list[str]

    @field_validator(*FACT_KINDS)
    @classmethod
    def _clean(cls, items: list[str]) -> list[str]:
        return [item.strip() for item in items if item.strip()]

    def is_empty(self) -> bool:
        return not any(getattr(self, kind) for kind in FACT_KINDS)

    def get(self, kind: str, index: int) -> str | None:
        """The fact ``kind:index``, or None when there is no such fact."""
        items = getattr(self, kind, None) if kind in FACT_KINDS else None
        return items[index] if items is not None and 0 <= index < len(items) else None

    def numbered(self) -> str:
        """One ``kind:index fact`` line per fact: what stage 2's prompt shows the model."""
        return "\n".join(
            f"{kind}:{i} {fact}" for kind in FACT_KINDS for i, fact in enumerate(getattr(self, kind))
        )

    def to_reasoning(self) -> Reasoning:
        return Reasoning(**{kind: getattr(self, kind) for kind in FACT_KINDS})


class QADraft(BaseModel):
    """One stage-2 pair and the fact it rests on (``kind:index``)."""

    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    fact: str

    @field_validator("fact")
    @classmethod
    def _tag(cls, fact: str) -> str:
        match = _FACT_TAG.match(fact)
        if match is None or match.group("kind") not in FACT_KINDS:
            raise ValueError(f"fact {fact!r} is not kind:index with kind one of {', '.join(FACT_KINDS)}")
        return f"{match.group('kind')}:{int(match.group('index'))}"

    @property
    def fact_kind(self) -> str:
        return self.fact.split(":")[0]

    @property
    def fact_index(self) -> int:
        return int(self.fact.split(":")[1])


class QADrafts(BaseModel):
    """Stage 2's reply."""

    model_config = ConfigDict(extra="ignore")

    qa: list[QADraft]


def parse_json_reply(text: str) -> object:
    """The JSON object in a model's reply (code fences and text around the object tolerated).

    Raises ``ValueError`` when there is none."""
    body = _FENCE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the reply")
    return json.loads(body[start : end + 1])
