"""Chinese-aware Med-VQA evaluation: canonical closed labels, open metrics, reports, baselines.

Two steps, each usable alone: generate an answers file (:mod:`ultra.eval.generate`), then score
it (:func:`score_answers`). The scorer needs no model.
"""

from ultra.eval import metrics
from ultra.eval.answers import answered_ids, append_answers, read_answers, write_answers
from ultra.eval.baselines import MajorityBaseline, fit_majority_baseline
from ultra.eval.canonical import CANONICAL_TABLE, CanonicalLabel, canonical_label, canonical_table_markdown
from ultra.eval.intervals import CV_METRICS, cv_markdown, mean_interval, mean_interval_text
from ultra.eval.llava_med import LlavaMedItem, normalize_word, score_llava_med
from ultra.eval.metrics import OpenScores, balanced_accuracy, bleu, bootstrap_ci, open_scores, rouge_l
from ultra.eval.report import markdown_table, write_report
from ultra.eval.score import BREAKDOWNS, GoldItem, image_sensitivity, score_answers
from ultra.eval.tokenize import tokenize_answer

__all__ = [
    "BREAKDOWNS",
    "CANONICAL_TABLE",
    "CV_METRICS",
    "CanonicalLabel",
    "GoldItem",
    "LlavaMedItem",
    "MajorityBaseline",
    "OpenScores",
    "answered_ids",
    "append_answers",
    "balanced_accuracy",
    "bleu",
    "bootstrap_ci",
    "canonical_label",
    "canonical_table_markdown",
    "cv_markdown",
    "fit_majority_baseline",
    "image_sensitivity",
    "markdown_table",
    "mean_interval",
    "mean_interval_text",
    "metrics",
    "normalize_word",
    "open_scores",
    "read_answers",
    "rouge_l",
    "score_answers",
    "score_llava_med",
    "tokenize_answer",
    "write_answers",
    "write_report",
]
