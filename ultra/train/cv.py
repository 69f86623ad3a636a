"""Choose a recipe without touching val: k-fold cross-validation inside the BUSI train split.

    ultra cv configs/tiny-zh.yaml --folds 5 [--max-steps 2] [--only 0,1] [--classifier-only]
             [--train-fraction 0.5]

Folds come from :func:`data_zh.splitting.cv_folds` (stratified, near-duplicate groups kept
whole). For each fold the recipe trains on the other folds — every BUSI data source of the
``train`` split is narrowed to their images — and validates on the held-out fold, in the wording
set the config's validation asks for. The reference is a plain classifier on the same encoders
in the same fold: the recipe's leading ``classification`` stages (e.g. phantom pre-training, then
the BUSI classifier) are exactly that classifier (later stages never change what it was scored
on), so its held-out scores are read from the same run; ``--reference CONFIG`` trains another classifier recipe in the folds instead.
The same final model answering with blank images gives the blind scores, and the held-out fold
asked in the held-out wordings (never used in training) gives the ``heldout_*`` scores. ``cv.json`` and
``cv.md`` hold per-fold numbers and the means with t-intervals over folds.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ultra.eval.intervals import cv_markdown, mean_interval
from ultra.train.config import DataSource, StageConfig, TrainConfig

logger = logging.getLogger(__name__)

def _reads_busi_train_images(source: DataSource) -> bool:
    """Whether a source reads BUSI images of the train split, which the folds divide: asked of the
    source registry (any name a config may use for a BUSI folder), not of a list of names."""
    from data_zh.sources import SOURCES, TRAINING_NAMES, resolve_source

    spec = SOURCES[resolve_source(source.kind, SOURCES, TRAINING_NAMES).source]
    return spec.dataset == "busi" and spec.root is not None and source.split == "train"


def _busi_root(config: TrainConfig) -> str:
    """The BUSI folder the recipe trains on (its ``train`` split is what the folds divide)."""
    for source in config.data.values():
        if _reads_busi_train_images(source):
            return source.path
    raise ValueError(
        "cross-validation needs a BUSI data source on the train split (kind: busi, split: train)"
    )


def subsample_training(keys: Sequence[str], fraction: float, seed: int) -> list[str]:
    """A stratified ``fraction`` of a fold's training images (label = BUSI folder), for learning
    curves. Each label's images are shuffled once per seed and the first share is kept, so a
    smaller fraction is always a subset of a larger one: the points differ only in how many."""
    from data_zh.splitting import folder_label

    if not 0 < fraction <= 1:
        raise ValueError(f"train fraction must be in (0, 1], got {fraction}")
    by_label: dict[str, list[str]] = {}
    for key in sorted(keys):
        by_label.setdefault(folder_label(key), []).append(key)
    kept = []
    for label, members in sorted(by_label.items()):
        random.Random(f"{seed}:{label}").shuffle(members)
        kept += members[: max(1, round(fraction * len(members)))]
    return sorted(kept)


def fold_images(
    folds: Sequence[Sequence[str]], index: int, train_fraction: float = 1.0, seed: int = 0
) -> tuple[list[str], list[str]]:
    """(held-out images, training images) of fold ``index``: the held-out fold whole, a stratified
    ``train_fraction`` of the other folds (seeded by the CV seed and the fold, so a recipe and
    its reference train on the same images)."""
    others = [key for other, keys in enumerate(folds) if other != index for key in keys]
    return sorted(folds[index]), subsample_training(others, train_fraction, seed * 1_000 + index)


def fold_config(
    config: TrainConfig,
    folds: Sequence[Sequence[str]],
    index: int,
    output_dir: Path,
    train_fraction: float = 1.0,
    seed: int = 0,
) -> TrainConfig:
    """The recipe for fold ``index``: BUSI train sources narrowed to the other folds' images (a
    stratified ``train_fraction`` of them, see :func:`fold_images`), validation on the held-out
    fold's images (train split, the config's wording set)."""
    held_out, training = fold_images(folds, index, train_fraction, seed)
    data = {
        name: source.model_copy(update={"images": training})
        if _reads_busi_train_images(source)
        else source
        for name, source in config.data.items()
    }
    previous = config.validation.source
    validation_source = DataSource(
        kind="busi_vqa",
        path=previous.path if previous is not None else _busi_root(config),
        split="train",
        wordings=previous.wordings if previous is not None else "train",
        images=held_out,
    )
    validation = config.validation.model_copy(update={"source": validation_source, "max_records": None})
    return config.model_copy(update={"data": data, "validation": validation, "output_dir": str(output_dir)})


def classifier_scores(confusion: dict[str, dict[str, int]], normal: str = "normal") -> dict[str, float]:
    """Lesion-vs-normal and malignancy balanced accuracy (percent) from a 3-class confusion, grouped
    the way the VLM's questions are: 是否可见病灶 is lesion vs normal; 良性还是恶性 is asked about every
    image (a normal one expects 未见明确病灶), so its reference is the 3-class balanced accuracy.

    ``classifier_consistency`` is the answer-type consistency of answers that follow this
    classifier and always take their question's form: each image is asked one site, one lesion
    and one 良恶性 question; the first two are of their kind whatever the image shows, but a
    良恶性 answer is of the gold's kind (未见明确病灶 or a class) only when the lesion decision is
    right. Answers can depart from their tower, so it is no strict bound; but for answers that
    follow it, a consistency target above it asks more of the tower than of the LLM. (With
    ``--reference`` it is the reference classifier's, not the tower the answers used.)"""
    from ultra.eval.metrics import accuracy, balanced_accuracy

    gold, predicted = [], []
    for truth, row in confusion.items():
        for guess, count in row.items():
            gold += [truth] * count
            predicted += [guess] * count
    lesion_gold, lesion_predicted = [g != normal for g in gold], [p != normal for p in predicted]
    lesion_right = accuracy([g == p for g, p in zip(lesion_gold, lesion_predicted, strict=True)])
    return {
        "classifier_lesion_bacc": 100 * balanced_accuracy(lesion_gold, lesion_predicted),
        "classifier_malignancy_bacc": 100 * balanced_accuracy(gold, predicted),
        "classifier_consistency": 100 * (2 + lesion_right) / 3,
    }


def answer_minus_classifier(scores: dict[str, float]) -> dict[str, float]:
    """The answers' balanced accuracy minus the plain classifier's in the same fold (lesion,
    malignancy): whether the LLM carries its tower's decision, paired so the fold's difficulty
    cancels (the target is within 3 points)."""
    gaps = {}
    for question in ("lesion", "malignancy"):
        answers, tower = scores.get(f"{question}_bacc"), scores.get(f"classifier_{question}_bacc")
        if answers is not None and tower is not None:
            gaps[f"{question}_minus_classifier"] = answers - tower
    return gaps


def _last_validation(validation: list[dict], stage: StageConfig) -> dict:
    rows = [row for row in validation if row["stage"] == stage.name]
    return rows[-1] if rows else {}


@dataclass
class FoldResult:
    """One fold's held-out scores (percent) and where its run went."""

    fold: int
    n_train_images: int
    n_heldout_images: int
    scores: dict[str, float]
    output_dir: str


def _final_model_scores(
    final_dir: Path, recipe: TrainConfig, validation: list, seed: int
) -> dict[str, float]:
    """What the finished fold model gives beyond its own validation: the same questions with blank
    images (``blind_*``) and the held-out fold asked in the wordings training never used
    (``heldout_*``: lesion balanced accuracy and answer-type consistency are targets of the model card)."""
    from ultra.eval.score import QUESTION_TYPE, score_answers
    from ultra.model import load_model
    from ultra.train.data import drop_records_without_media, load_source
    from ultra.train.validation import answer_records, closed_scores

    model, processor = load_model(final_dir)
    settings = {
        "batch_size": recipe.validation.batch_size,
        "max_new_tokens": recipe.validation.max_new_tokens,
    }
    scores: dict[str, float] = {}
    blind = answer_records(model, processor, validation, blank_images=True, **settings)
    metrics = score_answers(blind, validation, n_resamples=0, breakdowns=(QUESTION_TYPE,))
    scores |= {
        f"blind_{key}": value for key, value in closed_scores(metrics).items() if key.endswith("_bacc")
    }
    source = recipe.validation.source
    if source is not None and source.wordings != "heldout":
        heldout_source = source.model_copy(update={"wordings": "heldout"})
        heldout = drop_records_without_media(load_source(heldout_source, seed=seed))
        answers = answer_records(model, processor, heldout, **settings)
        metrics = score_answers(answers, heldout, n_resamples=0, breakdowns=(QUESTION_TYPE,))
        scores |= {f"heldout_{key}": value for key, value in closed_scores(metrics).items()}
    return scores


def _trains_the_tower(objective: str) -> bool:
    from ultra.train.objectives import OBJECTIVES

    return objective in OBJECTIVES and OBJECTIVES[objective].trains_the_tower


def tower_stage_count(config: TrainConfig) -> int:
    """How many leading stages train the tower alone (phantom pre-training, then the BUSI
    classifier): what ``--classifier-only`` runs, its last stage the reference."""
    count = 0
    while count < len(config.stages) and _trains_the_tower(config.stages[count].objective):
        count += 1
    return count


def run_fold(
    config: TrainConfig,
    folds: Sequence[Sequence[str]],
    index: int,
    output_root: Path,
    *,
    max_steps: int | None = None,
    reference: TrainConfig | None = None,
    show_progress: bool = False,
    model_builder: Any = None,
    classifier_only: bool = False,
    train_fraction: float = 1.0,
    seed: int = 0,
) -> FoldResult:
    """Train the recipe (and the reference, when given) on fold ``index`` and score the held-out fold.
    ``model_builder`` is the ``Trainer``'s (a fresh model per call; default: the config's);
    ``classifier_only`` runs the leading classification stages alone: comparing tower variants
    costs a fraction of the whole recipe."""
    from ultra.train.runner import Trainer

    fold_dir = output_root / f"fold{index}"
    if classifier_only:
        config = config.model_copy(update={"stages": config.stages[: tower_stage_count(config)]})
    recipe = fold_config(config, folds, index, fold_dir / "recipe", train_fraction, seed)
    common = {"max_steps": max_steps, "show_progress": show_progress, "model_builder": model_builder}
    trainer = Trainer(recipe, **common)
    result = trainer.run()
    last = _last_validation(result.validation, recipe.stages[-1])
    scores = {key: float(value) for key, value in last.items() if isinstance(value, int | float)}
    for key in ("stage", "step", "global_step"):
        scores.pop(key, None)
    if classifier_only:  # the last stage is the classifier: its scores come from the confusion below
        scores = {}
    classifier_run = result
    classifier_stage = recipe.stages[tower_stage_count(recipe) - 1]
    if reference is not None:
        reference_fold = fold_config(reference, folds, index, fold_dir / "reference", train_fraction, seed)
        classifier_run = Trainer(reference_fold, **common).run()
        classifier_stage = reference_fold.stages[tower_stage_count(reference_fold) - 1]
    confusion = _last_validation(classifier_run.validation, classifier_stage).get("confusion")
    if confusion:
        scores.update(classifier_scores(confusion))
    else:
        logger.warning("fold %d: the reference's classifier stages reported no validation", index)
    if not classifier_only:
        validation = trainer.validation_records()
        scores.update(_final_model_scores(result.final_dir, recipe, validation, recipe.seed))
        scores.update(answer_minus_classifier(scores))
    held_out, training = fold_images(folds, index, train_fraction, seed)
    return FoldResult(index, len(training), len(held_out), scores, str(fold_dir))


def summarize_folds(results: Sequence[FoldResult]) -> dict[str, Any]:
    """Per-metric mean and 95% t-interval over the folds that reported it."""
    keys = dict.fromkeys(key for result in results for key in result.scores)
    return {key: mean_interval([r.scores[key] for r in results if key in r.scores]) for key in keys}


def run_cv(
    config: TrainConfig,
    k: int = 5,
    seed: int = 0,
    *,
    only: Sequence[int] | None = None,
    max_steps: int | None = None,
    reference: TrainConfig | None = None,
    output_dir: Path | None = None,
    show_progress: bool = False,
    model_builder: Any = None,
    classifier_only: bool = False,
    train_fraction: float = 1.0,
) -> dict[str, Any]:
    """Run the recipe in each requested fold; write ``cv.json`` and ``cv.md``; return the summary."""
    from data_zh.splitting import cv_folds

    if tower_stage_count(config) == 0 and (reference is None or classifier_only):
        raise ValueError(
            "the recipe starts with no classification stage, so it has no classifier to run alone or "
            "to use as the reference; pass --reference CONFIG (and drop --classifier-only)"
        )
    if reference is not None and tower_stage_count(reference) == 0:
        raise ValueError("the --reference config starts with no classification stage: it is not a classifier")
    _busi_root(config)  # refuse a recipe without a BUSI train source before anything trains
    folds = cv_folds(k, seed)
    chosen = list(only) if only is not None else list(range(k))
    bad = [index for index in chosen if not 0 <= index < k]
    if bad:
        raise ValueError(f"fold indices {bad} are outside 0..{k - 1}")
    root = Path(output_dir or Path(config.output_dir) / "cv")
    results = [
        run_fold(
            config,
            folds,
            index,
            root,
            max_steps=max_steps,
            reference=reference,
            show_progress=show_progress,
            model_builder=model_builder,
            classifier_only=classifier_only,
            train_fraction=train_fraction,
            seed=seed,
        )
        for index in chosen
    ]
    summary = summarize_folds(results)
    report = {
        "k": k,
        "seed": seed,
        "training_seed": config.seed,
        "folds": [result.__dict__ for result in results],
        "summary": summary,
        "smoke": max_steps is not None,
        "classifier_only": classifier_only,
        "train_fraction": train_fraction,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "cv.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    (root / "cv.md").write_text(cv_markdown(summary, k, seed) + "\n", encoding="utf-8")
    return report
