"""The model card's scorecard: closed-question scores per question type of a model, of the same
model shown blank images, and of the train split's majority answer.

It is a breakdown of ``ultra.eval``'s scorer, not a second one: every number comes from
:func:`ultra.eval.score.score_answers` (grouped by :data:`ultra.eval.score.QUESTION_TYPE`), the
majority answers from :func:`ultra.eval.baselines.fit_majority_baseline` and the image
sensitivity from :func:`ultra.eval.score.image_sensitivity` — so the card and ``ultra eval run``
print the same numbers for the same answers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from torch import nn

from data_zh.schema import Record
from ultra.eval.baselines import fit_majority_baseline
from ultra.eval.score import QUESTION_TYPE, image_sensitivity, score_answers
from ultra.train.validation import answer_records

logger = logging.getLogger(__name__)

RUN_LABELS = {
    "model": "ultra-tiny-zh",
    "blind": "same model, blank images",
    "majority": "majority answer",
}


def scorecard_from_answers(
    answers: list[dict],
    blind_answers: list[dict],
    records: Sequence[Record],
    train_records: Sequence[Record],
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Overall and per-question-type scores (with bootstrap intervals) of the three runs.

    ``card[run]`` is ``{"overall": ..., "by_question_type": {type: summary}}`` for run in
    :data:`RUN_LABELS`; each summary is the scorer's own (``closed_accuracy``,
    ``closed_balanced_accuracy``, their ``_ci95``, ``n_closed``, ``n_closed_correct``, ...).
    """
    runs = {
        "model": answers,
        "blind": blind_answers,
        "majority": fit_majority_baseline(train_records).answers(records),
    }
    card: dict[str, Any] = {}
    for run, rows in runs.items():
        metrics = score_answers(
            rows,
            records,
            n_resamples=n_resamples,
            seed=seed,
            breakdowns=(QUESTION_TYPE,),
            group_resamples=n_resamples,
        )
        card[run] = {"overall": metrics["overall"], "by_question_type": metrics["by"][QUESTION_TYPE]}
    card["image_sensitivity"] = image_sensitivity(answers, blind_answers)
    return card


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
    """Answer ``records`` with and without the images, then :func:`scorecard_from_answers`."""
    seen = answer_records(model, processor, records, batch_size=batch_size, max_new_tokens=max_new_tokens)
    blind = answer_records(
        model, processor, records, batch_size=batch_size, max_new_tokens=max_new_tokens, blank_images=True
    )
    card = scorecard_from_answers(seen, blind, records, train_records, n_resamples)
    return card | {"answers": seen, "blind_answers": blind}


def interval_text(row: dict[str, Any], key: str) -> str:
    """``value [low, high]`` with one decimal, from a summary row and its ``<key>_ci95``."""
    low, high = row.get(f"{key}_ci95", [float("nan")] * 2)
    return f"{row[key]:.1f} [{low:.1f}, {high:.1f}]"


def scorecard_markdown(card: dict[str, Any], question_types: list[str] | None = None) -> str:
    """The model card's table: one row per (question type, run), closed questions only."""
    lines = [
        "| question | run | n | accuracy % [95% CI] | balanced accuracy % [95% CI] |",
        "| --- | --- | --- | --- | --- |",
    ]
    names = question_types or sorted(card["model"]["by_question_type"])
    for name in names:
        for run, label in RUN_LABELS.items():
            row = card[run]["by_question_type"].get(name)
            if row is None or not row.get("n_closed"):
                continue
            lines.append(
                f"| {name} | {label} | {row['n_closed']} ({row['n_closed_correct']} correct) | "
                f"{interval_text(row, 'closed_accuracy')} | {interval_text(row, 'closed_balanced_accuracy')} |"
            )
    return "\n".join(lines)
