"""Per-answer and aggregate Med-VQA metrics (no model needed).

Open questions compare token lists (see :mod:`ultra.eval.tokenize`):

- recall = share of gold tokens found in the prediction (LLaVA-Med's "open" number), precision,
  F1 — all with multiset (clipped) counts;
- exact match = identical token sequences;
- BLEU-n with *effective order*: the geometric mean runs over orders 1..k with
  k = min(n, len(reference), len(hypothesis)), uniform weights, no smoothing, times the brevity
  penalty. Most Chinese answers are one or two characters, so plain BLEU-4 would be 0 for a
  perfect two-character answer; with the effective order a perfect answer always scores 1;
- ROUGE-L = F1 of the longest common subsequence.

Closed questions compare canonical labels (:mod:`ultra.eval.canonical`, in :func:`ultra.eval.score.score_item`);
their hits are summed up here by ``accuracy`` and ``balanced_accuracy``.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

BLEU_ORDERS = (1, 2, 3, 4)


@dataclass(frozen=True)
class OpenScores:
    """Token-level scores of one open answer, each in [0, 1]."""

    recall: float
    precision: float
    f1: float
    exact_match: float
    bleu_1: float
    bleu_2: float
    bleu_3: float
    bleu_4: float
    rouge_l: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


OPEN_METRICS = tuple(OpenScores.__dataclass_fields__)


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(hypothesis: Sequence[str], reference: Sequence[str], max_order: int = 4) -> float:
    """Sentence BLEU up to ``max_order`` with the effective order described in the module doc."""
    if not hypothesis or not reference:
        return float(not hypothesis and not reference)
    order = min(max_order, len(reference), len(hypothesis))
    log_sum = 0.0
    for n in range(1, order + 1):
        hyp, ref = _ngrams(hypothesis, n), _ngrams(reference, n)
        matched = sum((hyp & ref).values())
        if matched == 0:
            return 0.0
        log_sum += math.log(matched / sum(hyp.values())) / order
    c, r = len(hypothesis), len(reference)
    brevity = 1.0 if c >= r else math.exp(1 - r / c)
    return brevity * math.exp(log_sum)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, O(len(a)·len(b)))."""
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(hypothesis: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-L F1 (beta = 1) over tokens."""
    if not hypothesis or not reference:
        return float(not hypothesis and not reference)
    lcs = lcs_length(hypothesis, reference)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(hypothesis), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def open_scores(hypothesis: Sequence[str], reference: Sequence[str]) -> OpenScores:
    """Every open-question metric for one tokenised prediction against its gold tokens."""
    if not hypothesis or not reference:
        same = float(not hypothesis and not reference)
        return OpenScores(*([same] * len(OPEN_METRICS)))
    overlap = sum((Counter(hypothesis) & Counter(reference)).values())
    recall, precision = overlap / len(reference), overlap / len(hypothesis)
    f1 = 2 * precision * recall / (precision + recall) if overlap else 0.0
    bleus = [bleu(hypothesis, reference, n) for n in BLEU_ORDERS]
    return OpenScores(
        recall=recall,
        precision=precision,
        f1=f1,
        exact_match=float(list(hypothesis) == list(reference)),
        bleu_1=bleus[0],
        bleu_2=bleus[1],
        bleu_3=bleus[2],
        bleu_4=bleus[3],
        rouge_l=rouge_l(hypothesis, reference),
    )


def accuracy(hits: Sequence[bool | float]) -> float:
    """Mean of 0/1 hits; 0.0 for an empty list."""
    return sum(float(h) for h in hits) / len(hits) if hits else 0.0


def balanced_accuracy(gold_labels: Sequence[Hashable], predicted_labels: Sequence[Hashable]) -> float:
    """Mean per-class recall over the classes present in the gold (robust to a majority-class
    guesser). Labels may be canonical answer strings or class indices; the one definition for
    ``ultra.eval`` and training validation alike."""
    if len(gold_labels) != len(predicted_labels):
        raise ValueError(f"{len(gold_labels)} gold labels but {len(predicted_labels)} predictions")
    per_class: dict[Hashable, list[bool]] = {}
    for gold, predicted in zip(gold_labels, predicted_labels, strict=True):
        per_class.setdefault(gold, []).append(gold == predicted)
    if not per_class:
        return 0.0
    return sum(accuracy(hits) for hits in per_class.values()) / len(per_class)


def bootstrap_ci(
    values: Sequence[Any],
    statistic: Callable[[Sequence[Any]], float] = accuracy,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over per-item values (seeded, reproducible).

    Items may be anything ``statistic`` understands, e.g. (gold, predicted) pairs for balanced
    accuracy; the default statistic is the mean of 0/1 hits.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not values:
        return (0.0, 0.0)
    rng = random.Random(seed)
    size = len(values)
    stats = sorted(statistic(rng.choices(values, k=size)) for _ in range(n_resamples))
    tail = (1 - confidence) / 2
    low = stats[max(0, math.floor(tail * n_resamples))]
    high = stats[min(n_resamples - 1, math.ceil((1 - tail) * n_resamples) - 1)]
    return (low, high)


# Probabilities of closed answers (``Answerer.choose``): ranking and calibration -----------------
ECE_BINS = 15


def roc_auc(labels: Sequence[int | bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve of ``scores`` for the positive ``labels`` (1/True), as the
    Mann-Whitney statistic: the chance that a random positive outscores a random negative, ties
    counting one half. None when either class is absent (no ranking to judge)."""
    import numpy as np

    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    positives, negatives = s[y], s[~y]
    if not positives.size or not negatives.size:
        return None
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (positives.size * negatives.size))


def sensitivity_specificity(
    labels: Sequence[int | bool], predicted: Sequence[int | bool]
) -> tuple[float | None, float | None]:
    """(share of positives predicted positive, share of negatives predicted negative); None for
    a class with no members."""
    if len(labels) != len(predicted):
        raise ValueError(f"{len(labels)} labels but {len(predicted)} predictions")
    pos = [bool(p) for y, p in zip(labels, predicted, strict=True) if y]
    neg = [not bool(p) for y, p in zip(labels, predicted, strict=True) if not y]
    return (accuracy(pos) if pos else None, accuracy(neg) if neg else None)


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin: its edges, how many answers fell in it, their mean confidence and accuracy."""

    low: float
    high: float
    count: int
    confidence: float
    accuracy: float


def reliability_bins(
    confidences: Sequence[float], correct: Sequence[bool], n_bins: int = ECE_BINS
) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1] of the top probability; bin ``b`` holds ``(b/n, (b+1)/n]``
    (the first also holds 0). Empty bins are kept with count 0."""
    import numpy as np

    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences but {len(correct)} outcomes")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    conf = np.asarray(confidences, dtype=float)
    hits = np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        bins.append(
            ReliabilityBin(
                low=float(edges[b]),
                high=float(edges[b + 1]),
                count=count,
                confidence=float(conf[members].mean()) if count else 0.0,
                accuracy=float(hits[members].mean()) if count else 0.0,
            )
        )
    return bins


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], n_bins: int = ECE_BINS
) -> float:
    """ECE: ``sum_b |B_b|/n * |accuracy(B_b) - confidence(B_b)|`` over ``reliability_bins``
    (confidence = the argmax candidate's probability, correct = the argmax is the gold answer)."""
    bins = reliability_bins(confidences, correct, n_bins)
    total = sum(b.count for b in bins)
    if not total:
        return 0.0
    return sum(b.count / total * abs(b.accuracy - b.confidence) for b in bins)
