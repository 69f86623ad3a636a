"""Probabilities for closed answers in ``ultra eval``: score each closed question whose kind has a
candidate set (``data_zh.candidates``) with ``Answerer.choose``, then report ranking (AUC),
the operating point (argmax: sensitivity, specificity) and calibration (ECE over 15 equal-width
bins, a reliability plot).

The temperature ``T`` divides the summed log-likelihoods before the softmax. It is fitted by
``fit_temperature`` (1-D minimisation of the mean negative log-likelihood of the gold candidate)
on answers of *another* split (training folds or a validation set) and passed in: a run writes
the temperature fitted on its own split to ``temperature.json`` for use on other splits, and never
applies it to itself.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_zh.candidates import CANDIDATE_SETS, CandidateSet
from data_zh.io import json_line, read_jsonl
from fusion.progress import progress_bar
from ultra.answerer import Answerer
from ultra.answerer.choice import check_temperature, softmax
from ultra.eval.canonical import fold_key
from ultra.eval.generate import request_for
from ultra.eval.metrics import (
    ECE_BINS,
    balanced_accuracy,
    expected_calibration_error,
    reliability_bins,
    roc_auc,
    sensitivity_specificity,
)
from ultra.media import DEFAULT_LIMITS, MediaError, MediaLimits

TEMPERATURE_BOUNDS = (0.05, 20.0)
log = logging.getLogger(__name__)


def candidate_kind(record: Any) -> str | None:
    """The candidate-set name of a closed record (its ``question_type``), or None."""
    kind = (getattr(record, "extra", None) or {}).get("question_type")
    return kind if kind in CANDIDATE_SETS else None


def gold_index(candidates: CandidateSet, answer: str) -> int | None:
    """Position of the gold answer among the candidates (either language, folded), or None."""
    key = fold_key(answer)
    for forms in (candidates.zh, candidates.en):
        for index, form in enumerate(forms):
            if fold_key(form) == key:
                return index
    return None


def choose_answers(
    answerer: Answerer,
    records: Sequence[Any],
    image_root: str | Path | None = None,
    *,
    blank_images: bool = False,
    limits: MediaLimits = DEFAULT_LIMITS,
    allow_outside_root: bool = False,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """One row per closed record with a candidate set: its kind, language, candidates (in its
    language), summed log-likelihoods and gold index (None when the gold is no candidate).
    Records whose media cannot be read are logged and left out (generation reports them)."""
    todo = [(record, candidate_kind(record)) for record in records]
    todo = [(record, kind) for record, kind in todo if kind is not None and record.answer is not None]
    rows = []
    with progress_bar(total=len(todo), unit="q", description="choosing", enabled=show_progress) as bar:
        for record, kind in todo:
            bar.update(1)
            try:
                request = request_for(
                    record, image_root, blank_images, limits=limits, allow_outside_root=allow_outside_root
                )
            except MediaError as error:
                log.warning("%s: unreadable media, not scored by choose (%s)", record.id, error)
                continue
            candidates = CANDIDATE_SETS[kind]
            choice = answerer.choose(request, candidates.candidates(record.language))
            rows.append(
                {
                    "id": record.id,
                    "kind": kind,
                    "language": record.language,
                    "candidates": list(choice.candidates),
                    "log_likelihoods": list(choice.log_likelihoods),
                    "gold": gold_index(candidates, record.answer),
                }
            )
    return rows


def nll(logits: Sequence[Sequence[float]], labels: Sequence[int], temperature: float) -> float:
    """Mean ``-log softmax(logits / T)[label]`` (rows may have different lengths)."""
    if not logits:
        return 0.0
    total = 0.0
    for row, label in zip(logits, labels, strict=True):
        scaled = [value / temperature for value in row]
        top = max(scaled)
        total += top + math.log(math.fsum(math.exp(v - top) for v in scaled)) - scaled[label]
    return total / len(logits)


def fit_temperature(logits: Sequence[Sequence[float]], labels: Sequence[int]) -> float:
    """The ``T`` in ``TEMPERATURE_BOUNDS`` minimising ``nll`` (bounded Brent search over log T)."""
    from scipy.optimize import minimize_scalar

    if len(logits) != len(labels):
        raise ValueError(f"{len(logits)} rows of logits but {len(labels)} labels")
    if not logits:
        raise ValueError("no answers to fit a temperature on")
    low, high = (math.log(bound) for bound in TEMPERATURE_BOUNDS)
    result = minimize_scalar(
        lambda log_t: nll(logits, labels, math.exp(log_t)),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(result.x))


def read_temperature(path: str | Path) -> float:
    """The ``temperature`` of a ``temperature.json`` written by an earlier run."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))["temperature"]
        return check_temperature(float(value))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a temperature file ({type(error).__name__}: {error})") from None


def write_choices(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """``choices.jsonl``: per closed question its kind, candidates, summed log-likelihoods, gold index."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json_line(row) for row in rows), encoding="utf-8")
    return path


def read_choices(path: str | Path) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl(path)]


def _binary(kind: str, rows: list[dict[str, Any]], probabilities: list[list[float]]) -> dict[str, Any]:
    indices = CANDIDATE_SETS[kind].binary_indices()
    if indices is None:
        return {}
    negative, positive = indices
    pairs = [(row, probs) for row, probs in zip(rows, probabilities, strict=True) if row["gold"] in indices]
    labels = [row["gold"] == positive for row, _ in pairs]
    scores = [probs[positive] / (probs[positive] + probs[negative] or 1.0) for _, probs in pairs]
    predicted = [max(range(len(probs)), key=probs.__getitem__) == positive for _, probs in pairs]
    sensitivity, specificity = sensitivity_specificity(labels, predicted)
    zh = CANDIDATE_SETS[kind].zh
    return {
        "positive": zh[positive],
        "negative": zh[negative],
        "n_binary": len(pairs),
        "auc": roc_auc(labels, scores),
        "sensitivity": sensitivity,
        "specificity": specificity,
    }


def probability_metrics(rows: Sequence[dict[str, Any]], temperature: float = 1.0) -> dict[str, Any]:
    """Per candidate kind (and over all): argmax accuracy, balanced accuracy, NLL, ECE (15 bins),
    the reliability bins, and for binary kinds AUC with sensitivity and specificity at the argmax
    (for 良恶性: images with a lesion only; an argmax of 未见明确病灶 counts as not malignant)."""
    temperature = check_temperature(temperature)
    scored = [row for row in rows if row.get("gold") is not None]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in scored:
        groups.setdefault(row["kind"], []).append(row)
    result: dict[str, Any] = {"temperature": temperature, "ece_bins": ECE_BINS, "kinds": {}}
    every_conf, every_hit = [], []
    for kind, members in sorted(groups.items()):
        probabilities = [softmax(row["log_likelihoods"], temperature) for row in members]
        best = [max(range(len(p)), key=p.__getitem__) for p in probabilities]
        golds = [row["gold"] for row in members]
        confidences = [p[b] for p, b in zip(probabilities, best, strict=True)]
        hits = [b == g for b, g in zip(best, golds, strict=True)]
        every_conf += confidences
        every_hit += hits
        result["kinds"][kind] = {
            "n": len(members),
            "accuracy": sum(hits) / len(hits),
            "balanced_accuracy": balanced_accuracy(golds, best),
            "nll": nll([row["log_likelihoods"] for row in members], golds, temperature),
            "ece": expected_calibration_error(confidences, hits),
            "reliability": [vars(b) for b in reliability_bins(confidences, hits)],
            **_binary(kind, members, probabilities),
        }
    result["overall"] = {
        "n": len(every_hit),
        "accuracy": sum(every_hit) / len(every_hit) if every_hit else 0.0,
        "ece": expected_calibration_error(every_conf, every_hit),
        "reliability": [vars(b) for b in reliability_bins(every_conf, every_hit)],
    }
    return result


def fit_temperature_on(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The temperature fitted on these answers (for use on another split), with its NLL at T=1 and T."""
    scored = [row for row in rows if row.get("gold") is not None]
    logits = [row["log_likelihoods"] for row in scored]
    labels = [row["gold"] for row in scored]
    temperature = fit_temperature(logits, labels)
    return {
        "temperature": temperature,
        "n": len(scored),
        "nll_at_1": nll(logits, labels, 1.0),
        "nll_at_fitted": nll(logits, labels, temperature),
    }


def reliability_chart(metrics: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Accuracy against confidence per kind (bins with answers), beside the diagonal of perfect
    calibration; Chinese labels."""
    from data_zh.figures import chinese_figure, save_figure

    with chinese_figure((5.5, 5.0), layout="constrained") as figure:
        axes = figure.add_subplot()
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="完全校准")
        for kind, summary in metrics["kinds"].items():
            filled = [b for b in summary["reliability"] if b["count"]]
            axes.plot(
                [b["confidence"] for b in filled],
                [b["accuracy"] for b in filled],
                marker="o",
                label=f"{kind}（ECE {summary['ece']:.3f}，n={summary['n']}）",
            )
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_xlabel("置信度（最可能候选答案的概率）")
        axes.set_ylabel("准确率")
        temperature = metrics["temperature"]
        axes.set_title(title or f"可靠性图（{metrics['ece_bins']} 个等宽区间，温度 T={temperature:.3g}）")
        axes.legend(loc="upper left", fontsize=8)
        return save_figure(figure, path)
