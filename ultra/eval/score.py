"""Score an answers file against gold records: overall metrics and breakdowns by category.

An *answers* list holds dicts with an ``id`` and an ``answer`` (LLaVA's ``question_id``/``text``
are accepted too). *Records* are ``data_zh.schema.Record`` objects (any object with ``id``,
``language``, ``answer_type``, ``task``, ``modality``, ``extra`` and ``answer`` works). A record
without an answer in the file is scored as an empty answer (a miss) and counted in
``n_missing``, so a partial run never looks better than it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ultra.eval.answer_kinds import answer_consistent
from ultra.eval.canonical import canonical_label
from ultra.eval.llava_med import LlavaMedItem, LlavaMedRule, check_rule, score_llava_med
from ultra.eval.metrics import (
    OPEN_METRICS,
    OpenScores,
    accuracy,
    balanced_accuracy,
    bootstrap_ci,
    open_scores,
)
from ultra.eval.tokenize import TokenMode, fold_text, tokenize_answer

log = logging.getLogger(__name__)

BREAKDOWNS = ("language", "answer_type", "content_type", "modality", "organ")
# A question's type: SLAKE's content_type, else the record's question_type (BUSI's lesion /
# malignancy / site, VQA-RAD's question_type). The majority baseline and the scorecard group by it.
QUESTION_TYPE = "content_type"
Compat = LlavaMedRule | None


class ScorableRecord(Protocol):
    """What the scorer reads from a gold record (``data_zh.schema.Record`` satisfies it)."""

    id: str
    language: str
    answer_type: str | None
    task: str
    modality: str
    extra: dict[str, Any]

    @property
    def answer(self) -> str | None: ...


@dataclass(frozen=True)
class GoldItem:
    """The parts of a record the scorer needs, with its breakdown categories."""

    id: str
    answer: str
    language: str
    answer_type: str
    categories: dict[str, str] = field(default_factory=dict)


def answer_type_of(record: ScorableRecord) -> str:
    """'closed' or 'open': the record's own field, else its task."""
    if record.answer_type in ("closed", "open"):
        return record.answer_type
    return "closed" if record.task in ("closed_vqa", "lesion_classification") else "open"


def _first_extra(extra: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = extra.get(key)
        if value not in (None, ""):
            return str(value).strip()
    return "unknown"


def gold_item(record: ScorableRecord) -> GoldItem | None:
    """The gold view of a record, or None when it has no answer to score against."""
    answer = record.answer
    if answer is None:
        return None
    answer_type = answer_type_of(record)
    categories = {
        "language": record.language,
        "answer_type": answer_type,
        "content_type": _first_extra(record.extra, "content_type", "question_type"),
        "modality": record.modality,
        "organ": _first_extra(record.extra, "organ", "location", "image_organ"),
    }
    return GoldItem(str(record.id), answer, record.language, answer_type, categories)


def gold_items(records: Iterable[ScorableRecord]) -> list[GoldItem]:
    """Gold items of every record that has an answer (the rest are logged and skipped)."""
    items: list[GoldItem] = []
    skipped: list[str] = []
    for record in records:
        item = gold_item(record)
        if item is None:
            skipped.append(record.id)
        else:
            items.append(item)
    if skipped:
        log.warning("%d record(s) have no gold answer and are not scored (e.g. %s)", len(skipped), skipped[0])
    return items


def answers_by_id(answers: Iterable[dict]) -> dict[str, str]:
    """Map answer id -> answer text; accepts ``id``/``answer`` and LLaVA's ``question_id``/``text``.

    An id answered twice is an error naming it: which of two answers counts cannot be guessed.
    """
    mapping: dict[str, str] = {}
    positions: dict[str, list[int]] = {}
    for position, row in enumerate(answers, start=1):
        key = row.get("id", row.get("question_id"))
        text = row.get("answer", row.get("text"))
        if key is None or text is None:
            raise ValueError(
                f"answer #{position} needs 'id' and 'answer' (or 'question_id' and 'text'): {row}"
            )
        mapping[str(key)] = str(text)
        positions.setdefault(str(key), []).append(position)
    duplicates = {key: where for key, where in positions.items() if len(where) > 1}
    if duplicates:
        shown = "; ".join(
            f"{key!r} (answers #{', #'.join(map(str, where))})"
            for key, where in list(duplicates.items())[:10]
        )
        raise ValueError(f"{len(duplicates)} id(s) answered more than once: {shown}")
    return mapping


@dataclass(frozen=True)
class ScoredItem:
    """One question's result."""

    item: GoldItem
    prediction: str
    gold_label: str | None = None
    predicted_label: str | None = None
    open: OpenScores | None = None
    consistent: bool | None = None

    @property
    def closed_hit(self) -> bool:
        return self.gold_label is not None and self.gold_label == self.predicted_label


def score_item(item: GoldItem, prediction: str, token_mode: TokenMode = "char") -> ScoredItem:
    """Score one prediction by its question's answer type."""
    if item.answer_type == "closed":
        return ScoredItem(
            item,
            prediction,
            canonical_label(item.answer),
            canonical_label(prediction),
            consistent=answer_consistent(item.answer, prediction),
        )
    hypothesis = tokenize_answer(prediction, item.language, token_mode)
    reference = tokenize_answer(item.answer, item.language, token_mode)
    return ScoredItem(item, prediction, open=open_scores(hypothesis, reference))


def _balanced_accuracy_of_pairs(pairs: Sequence[tuple[str, str]]) -> float:
    """Balanced accuracy of (gold label, predicted label) pairs (the bootstrap resamples pairs)."""
    return balanced_accuracy([gold for gold, _ in pairs], [predicted for _, predicted in pairs])


def summarize(scored: Sequence[ScoredItem], n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Percent metrics of a group: closed accuracy and balanced accuracy (each with a 95% CI when
    ``n_resamples``), answer-type consistency (closed answers of a known kind, see
    :mod:`ultra.eval.answer_kinds`), and every open metric (recall with a 95% CI)."""
    closed = [s for s in scored if s.item.answer_type == "closed"]
    opened = [s for s in scored if s.open is not None]
    summary: dict[str, Any] = {"n": len(scored), "n_closed": len(closed), "n_open": len(opened)}
    if closed:
        hits = [float(s.closed_hit) for s in closed]
        pairs = [(s.gold_label or "", s.predicted_label or "") for s in closed]
        summary["n_closed_correct"] = int(sum(hits))
        summary["closed_accuracy"] = 100 * accuracy(hits)
        summary["closed_balanced_accuracy"] = 100 * _balanced_accuracy_of_pairs(pairs)
        if n_resamples:
            low, high = bootstrap_ci(hits, n_resamples=n_resamples, seed=seed)
            summary["closed_accuracy_ci95"] = [100 * low, 100 * high]
            low, high = bootstrap_ci(
                pairs, statistic=_balanced_accuracy_of_pairs, n_resamples=n_resamples, seed=seed
            )
            summary["closed_balanced_accuracy_ci95"] = [100 * low, 100 * high]
        typed = [float(s.consistent) for s in closed if s.consistent is not None]
        if typed:
            summary["n_typed"] = len(typed)
            summary["answer_type_consistency"] = 100 * accuracy(typed)
    if opened:
        for name in OPEN_METRICS:
            summary[f"open_{name}"] = 100 * accuracy([getattr(s.open, name) for s in opened])
        if n_resamples:
            low, high = bootstrap_ci([s.open.recall for s in opened], n_resamples=n_resamples, seed=seed)
            summary["open_recall_ci95"] = [100 * low, 100 * high]
    return summary


def score_answers(
    answers: Iterable[dict],
    records: Iterable[ScorableRecord],
    token_mode: TokenMode = "char",
    compat: Compat = None,
    candidates: Sequence[str] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    breakdowns: Sequence[str] = BREAKDOWNS,
    group_resamples: int = 0,
) -> dict[str, Any]:
    """Metrics of an answers list against gold records (percent), overall and by category.

    ``group_resamples`` > 0 adds bootstrap intervals to every breakdown group too (the model card
    needs them per question type). ``compat="llava-med"`` adds LLaVA-Med v1.0.0's numbers under
    ``"llava_med"``, ``compat="llava-med-2023-08"`` those of its August 2023 release (see
    :mod:`ultra.eval.llava_med`); the default metrics are always reported too.
    """
    if compat is not None:
        check_rule(compat)
    records = list(records)
    items = gold_items(records)
    predictions = answers_by_id(answers)
    missing = [item.id for item in items if item.id not in predictions]
    if missing:
        log.warning("%d of %d question(s) have no answer; scored as empty", len(missing), len(items))
    known = {str(record.id) for record in records}
    unknown = [key for key in predictions if key not in known]
    if unknown:
        log.warning(
            "%d answer id(s) match no question of the dataset and are ignored (e.g. %s)",
            len(unknown),
            ", ".join(unknown[:3]),
        )
    scored = [score_item(item, predictions.get(item.id, ""), token_mode) for item in items]
    metrics: dict[str, Any] = {
        "scorer": "ultra",
        "token_mode": token_mode,
        "n_records": len(items),
        "n_answered": len(items) - len(missing),
        "n_missing": len(missing),
        "missing_ids": missing[:20],
        "n_unknown": len(unknown),
        "unknown_ids": unknown[:20],
        "overall": summarize(scored, n_resamples, seed),
        "by": {},
    }
    for category in breakdowns:
        groups: dict[str, list[ScoredItem]] = {}
        for s in scored:
            groups.setdefault(s.item.categories.get(category, "unknown"), []).append(s)
        metrics["by"][category] = {
            name: summarize(group, group_resamples, seed) for name, group in sorted(groups.items())
        }
    if compat is not None:
        compat_items = [
            LlavaMedItem(s.item.id, s.item.answer, s.prediction, s.item.answer_type.upper()) for s in scored
        ]
        if candidates is None:
            candidates = list(dict.fromkeys(item.answer for item in items if item.answer_type == "open"))
        metrics["llava_med"] = score_llava_med(compat_items, candidates, rule=compat)
    return metrics


def image_sensitivity(answers: Iterable[dict], blind_answers: Iterable[dict]) -> dict[str, float | int]:
    """Share (percent) of questions whose answer changed when the images were blanked.

    A model that ignores the image answers the same either way (sensitivity near 0).
    """
    seen, blind = answers_by_id(answers), answers_by_id(blind_answers)
    shared = [key for key in seen if key in blind]
    changed = sum(fold_text(seen[key]) != fold_text(blind[key]) for key in shared)
    return {
        "n_compared": len(shared),
        "changed": changed,
        "image_sensitivity": 100 * changed / len(shared) if shared else 0.0,
    }
