"""Means over cross-validation folds with 95% t-intervals, and the table of them the model card takes.

Folds are few (five), so an interval over their means uses Student's t, not the normal
approximation that :func:`ultra.eval.metrics.bootstrap_ci` stands in for over many questions.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

CV_METRICS = (
    ("lesion_bacc", "lesion presence balanced accuracy"),
    ("malignancy_bacc", "malignancy balanced accuracy"),
    ("answer_type_consistency", "answer-type consistency"),
    ("classifier_lesion_bacc", "plain classifier: lesion vs normal balanced accuracy"),
    ("classifier_malignancy_bacc", "plain classifier: benign / malignant / normal balanced accuracy"),
    ("classifier_consistency", "plain classifier: answer-type consistency of answers that follow it"),
    ("lesion_minus_classifier", "answers minus plain classifier, same fold: lesion"),
    ("malignancy_minus_classifier", "answers minus plain classifier, same fold: malignancy"),
    ("blind_lesion_bacc", "same model, blank images: lesion balanced accuracy"),
    ("blind_malignancy_bacc", "same model, blank images: malignancy balanced accuracy"),
    ("heldout_lesion_bacc", "held-out wordings: lesion presence balanced accuracy"),
    ("heldout_answer_type_consistency", "held-out wordings: answer-type consistency"),
)
"""The metrics a CV table lists, in order, with their labels."""


def mean_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean over folds with a 95% t-interval (folds are few; a normal interval would be too narrow)."""
    from scipy import stats

    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return {"mean": mean, "ci95": [float("nan"), float("nan")], "n_folds": n}
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return {"mean": mean, "ci95": [mean - half, mean + half], "n_folds": n}


def mean_interval_text(row: dict[str, Any]) -> str:
    """``mean [low, high]`` with one decimal, from a :func:`mean_interval` row."""
    low, high = row["ci95"]
    return f"{row['mean']:.1f} [{low:.1f}, {high:.1f}]"


def cv_markdown(summary: dict[str, Any], k: int, seed: int) -> str:
    """The table the model card takes: CV means with intervals, inside the train split only."""
    lines = [
        f"Cross-validation inside the BUSI train split: {k} folds (seed {seed}), near-duplicate groups "
        "kept whole; val was not touched. Mean over folds [95% t-interval].",
        "",
        "| metric | mean % [95% CI] | folds |",
        "| --- | --- | --- |",
    ]
    for key, label in CV_METRICS:
        row = summary.get(key)
        if row is not None:
            lines.append(f"| {label} | {mean_interval_text(row)} | {row['n_folds']} |")
    return "\n".join(lines)
