"""Validation during training: answer held-out closed questions and score them with ``ultra.eval``."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from data_zh.schema import Record
from ultra.eval.metrics import balanced_accuracy
from ultra.eval.score import QUESTION_TYPE, score_answers
from ultra.media import read_record_images, read_record_media
from ultra.train.supervision import LabelledImage

CLASSIFIER_BATCH = 16  # images per forward pass; a convolution's result may depend on its batch

logger = logging.getLogger(__name__)


def answer_records(
    model: nn.Module,
    processor: Any,
    records: list[Record],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 8,
    blank_images: bool = False,
) -> list[dict]:
    """Greedy answers as ``{"id", "answer"}`` rows (the answers-file format ``ultra eval`` scores),
    through the front door; mid-training the projectors are not marked trained yet, hence
    ``allow_untrained``."""
    from ultra.answerer import Answerer, GenerationSettings, Request

    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    requests = []
    for record in records:
        media = read_record_media(record, allow_outside_root=True)
        question = record.question or ""
        requests.append(
            Request(question, media.images, media.video_frames, settings=settings, blank_images=blank_images)
        )
    answerer = Answerer(model, processor, allow_untrained=True)
    answers = answerer.answer(requests, batch_size=batch_size)
    return [{"id": record.id, "answer": answer.text} for record, answer in zip(records, answers, strict=True)]


def validate_vqa(
    model: nn.Module, processor: Any, records: list[Record], batch_size: int, max_new_tokens: int
) -> dict:
    """Closed accuracy, balanced accuracy and answer-type consistency overall and per question type
    (e.g. BUSI's lesion and malignancy questions), in percent — the numbers ``ultra eval score`` gives the same answers."""
    answers = answer_records(model, processor, records, batch_size=batch_size, max_new_tokens=max_new_tokens)
    metrics = score_answers(answers, records, n_resamples=0, breakdowns=(QUESTION_TYPE,))
    return closed_scores(metrics)


def closed_scores(metrics: dict[str, Any]) -> dict[str, float]:
    """Flat validation scores from ``score_answers`` metrics: overall closed accuracy / balanced
    accuracy, then ``<type>_acc`` / ``<type>_bacc`` for each question type with closed questions."""
    overall = metrics["overall"]
    keys = ("closed_accuracy", "closed_balanced_accuracy", "answer_type_consistency")
    scores = {key: overall[key] for key in keys if key in overall}
    for name, row in metrics["by"][QUESTION_TYPE].items():
        if "closed_accuracy" in row:
            scores[f"{name}_acc"] = row["closed_accuracy"]
            scores[f"{name}_bacc"] = row["closed_balanced_accuracy"]
        if "answer_type_consistency" in row:
            scores[f"{name}_consistency"] = row["answer_type_consistency"]
    return scores


@torch.no_grad()
def validate_classifier(
    classifier: nn.Module, fusion: nn.Module, items: list[LabelledImage], classes: list[str] | None = None
) -> dict:
    """Accuracy, balanced accuracy and the confusion counts (``confusion[gold][predicted]``, by class
    name when ``classes`` is given) of the stage-0 image classifier on held-out images; the counts
    let cross-validation derive grouped scores (lesion vs normal) without a second pass."""
    was_training = classifier.training
    classifier.eval()
    labels, predictions = [], []
    try:
        for start in range(0, len(items), CLASSIFIER_BATCH):
            chunk = items[start : start + CLASSIFIER_BATCH]
            images = [read_record_images(item.record, allow_outside_root=True)[0] for item in chunk]
            logits = classifier(fusion.preprocess(images))
            predictions += logits.argmax(dim=-1).tolist()
            labels += [item.label for item in chunk]
    finally:
        classifier.train(was_training)
    correct = sum(int(a == b) for a, b in zip(labels, predictions, strict=True))
    names = classes or [str(index) for index in range(max([*labels, *predictions], default=-1) + 1)]
    return {
        "n": len(labels),
        "accuracy": correct / max(len(labels), 1),
        "balanced_accuracy": balanced_accuracy(labels, predictions),
        "confusion": confusion_counts(labels, predictions, names),
    }


def confusion_counts(gold: list[int], predicted: list[int], names: list[str]) -> dict[str, dict[str, int]]:
    """``confusion[gold][predicted]`` counts by class name (only the pairs that occur)."""
    confusion: dict[str, dict[str, int]] = {}
    for truth, guess in zip(gold, predicted, strict=True):
        row = confusion.setdefault(names[truth], {})
        row[names[guess]] = row.get(names[guess], 0) + 1
    return confusion
