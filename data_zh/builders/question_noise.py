"""Character-level noise on training questions, so a small LLM reads the question, not a template.

A model trained from scratch on a few hundred wordings learns their exact character n-grams: a
question that splits 良性还是恶性 into 良性病变还是恶性肿瘤, or adds an unseen word, falls into
another task's answer. Random edits of the question (delete a character, replace it, insert one
drawn from the source's own question characters) keep the answer fixed, so the answer has to come
from the words that survive rather than from the exact string. Edits are seeded per record id:
the same source gives the same records on every run. Image placeholders are never touched.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from data_zh.schema import IMAGE_PLACEHOLDER, Record, Turn


def _split_placeholders(content: str) -> tuple[str, str]:
    """(the leading image-placeholder lines, the question text after them)."""
    lines = content.split("\n")
    count = 0
    while count < len(lines) and lines[count] == IMAGE_PLACEHOLDER:
        count += 1
    return "\n".join(lines[:count]), "\n".join(lines[count:])


def character_pool(records: Sequence[Record]) -> list[str]:
    """Every ideograph of the records' questions, sorted: what an inserted or replaced character is."""
    characters = {
        character
        for record in records
        for character in _split_placeholders(record.conversations[0].content)[1]
        if "\u4e00" <= character <= "\u9fff"
    }
    return sorted(characters)


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
    pool = character_pool(records)
    if not pool or rate == 0 or share == 0:
        return list(records)
    noisy = []
    for record in records:
        rng = random.Random(f"{seed}:{record.id}")
        if rng.random() >= share:
            noisy.append(record)
            continue
        first, *rest = record.conversations
        placeholders, question = _split_placeholders(first.content)
        edited = noisy_text(question, rate, pool, rng)
        content = f"{placeholders}\n{edited}" if placeholders else edited
        turns = [Turn(role=first.role, content=content), *rest]
        extra = {**record.extra, "question_noise": rate}
        noisy.append(record.model_copy(update={"conversations": turns, "extra": extra}))
    return noisy
