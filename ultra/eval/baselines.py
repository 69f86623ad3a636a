"""Baselines computed by the same scorer: the majority answer per question type.

A model that does not beat "answer what the train split answers most often for this kind of
question" has learnt the answer prior, not the images.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ultra.eval.canonical import canonical_label
from ultra.eval.score import QUESTION_TYPE, GoldItem, ScorableRecord, gold_items
from ultra.eval.tokenize import fold_text


def question_type_key(item: GoldItem) -> tuple[str, str, str]:
    """(language, answer type, content/question type): the unit a majority answer is taken over."""
    return (item.language, item.answer_type, item.categories.get(QUESTION_TYPE, "unknown"))


def _majority(answers: list[str], closed: bool) -> str:
    """Most common answer; closed answers are counted by canonical label (是的 and 是 pool)."""
    groups = Counter(canonical_label(a) if closed else fold_text(a) for a in answers)
    winner = groups.most_common(1)[0][0]
    members = [a for a in answers if (canonical_label(a) if closed else fold_text(a)) == winner]
    return Counter(members).most_common(1)[0][0]


@dataclass(frozen=True)
class MajorityBaseline:
    """Majority answer per question type, with coarser fallbacks for unseen types."""

    by_type: dict[tuple[str, str, str], str]
    by_language_and_answer_type: dict[tuple[str, str], str]
    by_language: dict[str, str]

    def predict(self, item: GoldItem) -> str:
        key = question_type_key(item)
        if key in self.by_type:
            return self.by_type[key]
        return self.by_language_and_answer_type.get(
            (item.language, item.answer_type), self.by_language.get(item.language, "")
        )

    def answers(self, records: Iterable[ScorableRecord]) -> list[dict[str, str]]:
        """An answers list (``id``, ``answer``) for the given records."""
        return [{"id": item.id, "answer": self.predict(item)} for item in gold_items(records)]


def fit_majority_baseline(train_records: Iterable[ScorableRecord]) -> MajorityBaseline:
    """Learn the majority answers from a train split."""
    items = gold_items(train_records)
    if not items:
        raise ValueError("majority baseline: the train split has no answered records")
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for item in items:
        grouped.setdefault(question_type_key(item), []).append(item.answer)
    coarse: dict[tuple[str, str], list[str]] = {}
    per_language: dict[str, list[str]] = {}
    for item in items:
        coarse.setdefault((item.language, item.answer_type), []).append(item.answer)
        per_language.setdefault(item.language, []).append(item.answer)
    return MajorityBaseline(
        by_type={key: _majority(values, key[1] == "closed") for key, values in grouped.items()},
        by_language_and_answer_type={key: _majority(v, key[1] == "closed") for key, v in coarse.items()},
        by_language={key: _majority(values, False) for key, values in per_language.items()},
    )
