"""Character-level noise on training questions, so a small LLM reads the question, not a template.

A model trained from scratch on a few hundred wordings learns their exact character n-grams: a
question that puts other words between 良性 and 恶性, or adds an unseen word, falls into another
task's answer. Random edits of the question (delete a character, replace it, insert one
drawn from the source's own question characters) keep the answer fixed, so the answer has to come
from the words that survive rather than from the exact string. Edits are seeded per record id:
the same source gives the same records on every run (a repeated source repeats the same edits).
Image and video placeholders are never touched. For training sources only: validation and
evaluation ask the questions as written.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from data_zh.schema import IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER, Record, Turn
from data_zh.text.normalize import CJK_RANGES

_PLACEHOLDER = re.compile(rf"\n?(?:{re.escape(IMAGE_PLACEHOLDER)}|{re.escape(VIDEO_PLACEHOLDER)})\n?")
_IDEOGRAPH = re.compile(rf"[{CJK_RANGES}]")


def _pieces(content: str) -> list[tuple[str, bool]]:
    """The user turn as (text, is_placeholder) pieces: placeholders, with their line breaks, are
    kept whole wherever they stand (before the question, after it, ``<video>`` as well)."""
    pieces, start = [], 0
    for match in _PLACEHOLDER.finditer(content):
        if match.start() > start:
            pieces.append((content[start : match.start()], False))
        pieces.append((match.group(), True))
        start = match.end()
    if start < len(content):
        pieces.append((content[start:], False))
    return pieces


def character_pool(records: Sequence[Record]) -> list[str]:
    """Every ideograph of the records' questions, sorted: what an inserted or replaced character is."""
    return sorted(
        {
            character
            for record in records
            for text, placeholder in _pieces(record.conversations[0].content)
            if not placeholder
            for character in _IDEOGRAPH.findall(text)
        }
    )


def noisy_text(text: str, rate: float, pool: Sequence[str], rng: random.Random) -> str:
    """Each character, with probability ``rate``, is deleted, replaced or followed by a pool character
    (equally likely); the text is never left empty."""
    out: list[str] = []
    for character in text:
        if rng.random() >= rate:
            out.append(character)
            continue
        edit = rng.randrange(3)
        if edit == 1:
            out.append(rng.choice(pool))
        elif edit == 2:
            out += [character, rng.choice(pool)]
    return "".join(out) or text


def with_question_noise(records: Sequence[Record], rate: float, share: float, seed: int = 0) -> list[Record]:
    """The records with a ``share`` of them (drawn per record id) given a noisy first question;
    the rest unchanged. ``extra["question_noise"]`` marks the edited ones."""
    if not 0 <= rate <= 1 or not 0 <= share <= 1:
        raise ValueError(f"question noise rate and share must be in [0, 1], got {rate} and {share}")
    if rate == 0 or share == 0:
        return list(records)
    pool = character_pool(records)
    if not pool:
        raise ValueError("question noise needs Chinese questions: these records' questions have no ideograph")
    noisy = []
    for record in records:
        rng = random.Random(f"{seed}:{record.id}")
        if rng.random() >= share:
            noisy.append(record)
            continue
        first, *rest = record.conversations
        content = "".join(
            text if placeholder else noisy_text(text, rate, pool, rng)
            for text, placeholder in _pieces(first.content)
        )
        turns = [Turn(role=first.role, content=content), *rest]
        noisy.append(record.derive(conversations=turns, extra={**record.extra, "question_noise": rate}))
    return noisy
