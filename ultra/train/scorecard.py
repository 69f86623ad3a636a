"""Per-question-type scores of a model on closed questions, with the two baselines the model card
needs: the majority answer (from the train split) and the same model shown blank images."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from torch import nn

from data_zh.schema import Record
from ultra.train.validation import answer_records

logger = logging.getLogger(__name__)


def question_type(record: Record) -> str:
    return str(record.extra.get("question_type", record.task))


def majority_answers(train_records: list[Record], records: list[Record]) -> list[dict]:
    """Each question answered with the most common gold label of its question type in training."""
    from ultra.eval import canonical_label

    by_type: dict[str, Counter] = {}
    for record in train_records:
        if record.answer_type == "closed" and record.answer:
            by_type.setdefault(question_type(record), Counter())[
                canonical_label(record.answer) or record.answer
            ] += 1
    rows = []
    for record in records:
        counts = by_type.get(question_type(record))
        rows.append({"id": record.id, "answer": counts.most_common(1)[0][0] if counts else ""})
    return rows


def closed_scores(
    records: list[Record], answers: list[dict], n_resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Accuracy and balanced accuracy (mean per-class recall), in percent, with counts and
    percentile-bootstrap 95% intervals (resampling questions)."""
    from ultra.eval import balanced_accuracy, bootstrap_ci, canonical_label

    predicted = {row["id"]: row["answer"] for row in answers}
    pairs = [(canonical_label(r.answer or ""), canonical_label(predicted.get(r.id, ""))) for r in records]
    hits = [float(gold == pred) for gold, pred in pairs]

    def bacc(sample: list[tuple[str, str]]) -> float:
        return balanced_accuracy([g for g, _ in sample], [p for _, p in sample])

    result: dict[str, Any] = {
        "n": len(pairs),
        "correct": int(sum(hits)),
        "accuracy": 100 * sum(hits) / max(len(hits), 1),
        "balanced_accuracy": 100 * bacc(pairs) if pairs else 0.0,
        "classes": dict(Counter(g for g, _ in pairs)),
    }
    if n_resamples and pairs:
        result["accuracy_ci95"] = [100 * v for v in bootstrap_ci(hits, n_resamples=n_resamples, seed=seed)]
        result["balanced_accuracy_ci95"] = [
            100 * v for v in bootstrap_ci(pairs, statistic=bacc, n_resamples=n_resamples, seed=seed)
        ]
    return result


def by_question_type(
    records: list[Record], answers: list[dict], n_resamples: int = 1000
) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Record]] = {}
    for record in records:
        if record.answer_type == "closed":
            groups.setdefault(question_type(record), []).append(record)
    return {name: closed_scores(group, answers, n_resamples) for name, group in sorted(groups.items())}


def scorecard(
    model: nn.Module,
    processor: Any,
    records: list[Record],
    train_records: list[Record],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 8,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """Model, blind (``blank_images=True``) and majority scores per question type, plus answers."""
    seen = answer_records(model, processor, records, batch_size=batch_size, max_new_tokens=max_new_tokens)
    blind = answer_records(
        model, processor, records, batch_size=batch_size, max_new_tokens=max_new_tokens, blank_images=True
    )
    majority = majority_answers(train_records, records)
    changed = sum(a["answer"] != b["answer"] for a, b in zip(seen, blind, strict=True))
    return {
        "model": by_question_type(records, seen, n_resamples),
        "blind": by_question_type(records, blind, n_resamples),
        "majority": by_question_type(records, majority, n_resamples),
        "image_sensitivity": 100 * changed / max(len(records), 1),
        "answers": seen,
        "blind_answers": blind,
    }


def scorecard_markdown(card: dict[str, Any], question_types: list[str] | None = None) -> str:
    """The model card's table: one row per (question type, run)."""
    lines = [
        "| question | run | n | accuracy % [95% CI] | balanced accuracy % [95% CI] |",
        "| --- | --- | --- | --- | --- |",
    ]
    names = question_types or sorted(card["model"])
    for name in names:
        for run in ("model", "blind", "majority"):
            row = card[run].get(name)
            if row is None:
                continue
            acc_ci = row.get("accuracy_ci95", [float("nan")] * 2)
            bacc_ci = row.get("balanced_accuracy_ci95", [float("nan")] * 2)
            label = {
                "model": "ultra-tiny-zh",
                "blind": "same model, blank images",
                "majority": "majority answer",
            }[run]
            lines.append(
                f"| {name} | {label} | {row['n']} ({row['correct']} correct) | "
                f"{row['accuracy']:.1f} [{acc_ci[0]:.1f}, {acc_ci[1]:.1f}] | "
                f"{row['balanced_accuracy']:.1f} [{bacc_ci[0]:.1f}, {bacc_ci[1]:.1f}] |"
            )
    return "\n".join(lines)
