"""Are a recipe's tower errors noise or what the towers learn? Its CV runs, several training seeds.

    python -m ultra.train.tower_errors RUN_DIR RUN_DIR ... [--figure OUT.png] [--json OUT.json]

Each ``RUN_DIR`` is an ``ultra.train.cv`` output (its ``cv.json`` and fold folders) of one recipe
whose tower has a decision head (``model.decision_classes``), with another training seed on the
same folds. Every fold's final tower classifies the fold's held-out images three ways: alone,
averaged with the mirrored image (the training augmentation's flip), and averaged over the seeds'
towers. Averaging removes what varies between views and between training runs; if it does not
raise the balanced accuracy, and the towers misclassify the same images far more often than
towers erring independently would (at each tower's error rate on each class), the errors are
systematic: only other features or other data move them, not more seeds or views.

The towers also set the answer-type consistency of answers that follow them: a 良恶性 answer is
of its gold's kind only when the lesion decision is right (``classifier_consistency``). For runs
that trained the LLM too, the answers' consistency (training and held-out wordings, from
``cv.json``) is shown beside that of the same runs' towers.

Scores are the CV's own (:func:`ultra.train.cv.classifier_scores`, images in the validation's
batches), so a tower alone reproduces its ``cv.json`` row — when the run exported float32
weights (in float16 a near-tie may flip), did not use ``--reference`` (the row is then another
classifier's) and trained no tower stage after its classifier.
"""

from __future__ import annotations

import json
import statistics
import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ultra.train.cv import classifier_scores, mean_interval, mean_interval_text
from ultra.train.cv_compare import read_variant
from ultra.train.validation import CLASSIFIER_BATCH, confusion_counts

METRICS = (
    ("classifier_malignancy_bacc", "良性/恶性/正常"),
    ("classifier_lesion_bacc", "病灶有无"),
    ("classifier_consistency", "随塔回答的类型一致率"),
)
# issue #15's answer targets (consistency: the held-out wordings' answer-type consistency)
TARGETS = {"classifier_malignancy_bacc": 78.0, "classifier_lesion_bacc": 80.0, "classifier_consistency": 95.0}
HEADINGS = {
    "classifier_malignancy_bacc": "3 classes, balanced accuracy",
    "classifier_lesion_bacc": "lesion vs normal, balanced accuracy",
    "classifier_consistency": "consistency of answers following the tower",
}
HELDOUT_CONSISTENCY = "heldout_answer_type_consistency"
ANSWERS = (
    ("answer_type_consistency", "answers, training wordings"),
    (HELDOUT_CONSISTENCY, "answers, held-out wordings"),
)
WAYS = (
    ("alone", "单个塔 / one tower"),
    ("mirrored", "加镜像平均 / + mirror"),
    ("towers", "多塔平均 / towers"),
)


@dataclass(frozen=True)
class FoldViews:
    """One fold tower's class probabilities on its held-out images: ``probabilities[i, v, c]``
    for image ``i``, view ``v`` (0: as stored, 1: mirrored) and class ``c``."""

    classes: list[str]
    images: list[str]
    gold: list[int]
    probabilities: torch.Tensor


def class_probabilities(classifier: nn.Module, tower: nn.Module, images: list) -> torch.Tensor:
    """Softmax of the tower's decision head, in the batches the CV validated in."""
    logits = [
        classifier(tower.preprocess(images[start : start + CLASSIFIER_BATCH]))
        for start in range(0, len(images), CLASSIFIER_BATCH)
    ]
    return torch.softmax(torch.cat(logits).float(), dim=-1)


def fold_views(recipe_dir: Path) -> FoldViews:
    """The fold's final tower on the held-out images its CV run validated on."""
    from PIL import ImageOps

    from ultra.media import read_record_images
    from ultra.model import load_model
    from ultra.train.config import TrainConfig
    from ultra.train.runner import Trainer
    from ultra.train.supervision import ImageClassifier, find_vision_fusion, labelled_images

    config = TrainConfig.model_validate_json((recipe_dir / "config.json").read_text(encoding="utf-8"))
    model, _ = load_model(recipe_dir / "final")
    _, tower = find_vision_fusion(model)
    if tower.decision_head is None:
        raise ValueError(
            f"{recipe_dir}: the tower has no decision head (a recipe with model.decision_classes)"
        )
    records = Trainer(config, show_progress=False).validation_records()
    items, classes = labelled_images(records, tower.decision_classes)
    images = [read_record_images(item.record, allow_outside_root=True)[0] for item in items]
    classifier = ImageClassifier(tower, tower.decision_head).eval()
    with torch.no_grad():
        views = [images, [ImageOps.mirror(image) for image in images]]
        probabilities = torch.stack([class_probabilities(classifier, tower, view) for view in views], dim=1)
    names = [str(item.record.media.all_paths()[0]) for item in items]
    return FoldViews(classes, names, [item.label for item in items], probabilities)


def tower_scores(classes: list[str], gold: list[int], probabilities: torch.Tensor) -> dict[str, float]:
    """Lesion and 3-class balanced accuracy (percent) of the argmax, as the CV scores a tower."""
    return classifier_scores(confusion_counts(gold, probabilities.argmax(dim=-1).tolist(), classes))


def shared_errors(towers: Sequence[FoldViews], averaged: torch.Tensor) -> dict[str, Any]:
    """How many images some / every tower misclassifies (3 classes, views as stored), the same
    counts expected of towers erring independently at their own error rate on each class (a
    class that is hard for every tower is not taken for shared errors), and what the images that
    every tower misses are taken for by the towers' average."""
    first = towers[0]
    gold = torch.tensor(first.gold)
    wrong = torch.stack([tower.probabilities[:, 0].argmax(dim=-1) != gold for tower in towers])
    independent_some = independent_every = 0.0
    for label in gold.unique().tolist():
        in_class = gold == label
        rates = wrong[:, in_class].float().mean(dim=1)
        independent_every += int(in_class.sum()) * float(rates.prod())
        independent_some += int(in_class.sum()) * float(1 - (1 - rates).prod())
    mistakes = Counter(
        f"{first.classes[first.gold[index]]} -> {first.classes[int(averaged[index].argmax())]}"
        for index in wrong.all(dim=0).nonzero().flatten().tolist()
    )
    return {
        "wrong_in_some": int(wrong.any(dim=0).sum()),
        "wrong_in_every": int(wrong.all(dim=0).sum()),
        "independent_some": independent_some,
        "independent_every": independent_every,
        "mistakes": dict(mistakes),
    }


def compare_fold(
    towers: Sequence[FoldViews], runs: Sequence[str], answers: Sequence[dict[str, float]] | None = None
) -> dict[str, Any]:
    """One fold: each tower alone and mirrored, the towers averaged, and their shared errors;
    ``answers``: each run's ``cv.json`` scores of the fold (their answers' consistency)."""
    first = towers[0]
    for tower, run in zip(towers[1:], runs[1:], strict=True):
        if tower.images != first.images or tower.classes != first.classes:
            raise ValueError(f"{run}: its tower was not validated on the images and classes of {runs[0]}'s")
    averaged = torch.stack([tower.probabilities[:, 0] for tower in towers]).mean(dim=0)
    return {
        "n_images": len(first.gold),
        "alone": [tower_scores(first.classes, first.gold, tower.probabilities[:, 0]) for tower in towers],
        "mirrored": [
            tower_scores(first.classes, first.gold, tower.probabilities.mean(dim=1)) for tower in towers
        ],
        "towers": tower_scores(first.classes, first.gold, averaged),
        "answers": [
            {key: run[key] for key, _ in ANSWERS if key in run} for run in (answers or [{}] * len(towers))
        ],
        **shared_errors(towers, averaged),
    }


def compare_runs(run_dirs: Sequence[Path]) -> dict[str, Any]:
    """Every fold that all runs scored; the runs must share their folds (as ``cv_compare``) and
    be whole runs (a ``--max-steps`` smoke run validates on a sample of its fold)."""
    files = [Path(run) / "cv.json" for run in run_dirs]
    variant, (_, _, _, smoke) = read_variant("towers", files)
    if smoke:
        raise ValueError(f"{files[0]}: a --max-steps smoke run; its towers were validated on a sample")
    folds = set.intersection(*(set(run) for run in variant.runs))
    report: dict[str, Any] = {"runs": [str(run) for run in run_dirs], "folds": {}}
    for fold in sorted(folds):
        towers = [fold_views(Path(run) / f"fold{fold}" / "recipe") for run in run_dirs]
        answers = [run[fold] for run in variant.runs]
        report["folds"][fold] = compare_fold(towers, [f"{run}/fold{fold}" for run in run_dirs], answers)
    report["summary"] = summarize(report["folds"])
    return report


def summarize(folds: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per metric and way: mean [t-interval over folds] of the fold scores (a fold's single towers
    averaged over the seeds first) and the gain over one tower paired by fold; the errors pooled
    over folds: the share of misclassified images that every tower misclassifies, beside the
    share expected of independent towers."""
    summary: dict[str, Any] = {}
    for metric, _ in METRICS:
        ways = {
            way: [seed_mean(fold[way], metric) for fold in folds.values()] for way in ("alone", "mirrored")
        }
        ways["towers"] = [fold["towers"][metric] for fold in folds.values()]
        summary[metric] = {
            way: {
                **mean_interval(values),
                "per_fold": values,
                "gain": mean_interval(
                    [value - alone for value, alone in zip(values, ways["alone"], strict=True)]
                ),
            }
            for way, values in ways.items()
        }
    pooled = {
        key: sum(fold[key] for fold in folds.values())
        for key in ("wrong_in_some", "wrong_in_every", "independent_some", "independent_every")
    }
    summary["shared_errors"] = {
        **pooled,
        "share": share_of(pooled["wrong_in_every"], pooled["wrong_in_some"]),
        "share_if_independent": share_of(pooled["independent_every"], pooled["independent_some"]),
        "mistakes": dict(sum((Counter(fold["mistakes"]) for fold in folds.values()), Counter())),
    }
    summary["answers"] = answer_consistency(folds)
    return summary


def answer_consistency(folds: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Runs that answered (an LLM stage ran, validated in the training wordings, scored again in
    the held-out ones): per fold, over those runs, the consistency of answers that follow their
    towers and their answers' own in both wordings; mean [t-interval over folds]. ``runs``: how
    many runs answered in each fold. Empty when no run answered."""
    rows: dict[str, list[float]] = {"classifier_consistency": [], **{key: [] for key, _ in ANSWERS}}
    runs = []
    for fold in folds.values():
        answered = [
            (tower, answers)
            for tower, answers in zip(fold["alone"], fold["answers"], strict=True)
            if answered_both(answers)
        ]
        if not answered:
            continue
        runs.append(len(answered))
        rows["classifier_consistency"].append(
            statistics.fmean(t["classifier_consistency"] for t, _ in answered)
        )
        for key, _ in ANSWERS:
            rows[key].append(statistics.fmean(a[key] for _, a in answered))
    if not runs:
        return {}
    return {"runs": runs, **{key: mean_interval(values) for key, values in rows.items()}}


def answered_both(answers: dict[str, float]) -> bool:
    """Whether a run's fold scores hold its answers' consistency in both wordings."""
    return all(key in answers for key, _ in ANSWERS)


def seed_mean(rows: list[dict[str, float]], metric: str) -> float:
    """One fold's score averaged over the seeds' towers."""
    return statistics.fmean(row[metric] for row in rows)


def share_of(part: float, whole: float) -> float:
    """``part / whole``; NaN when no image was misclassified."""
    return part / whole if whole else float("nan")


def report_markdown(report: dict[str, Any]) -> str:
    """One table per metric (80 columns), the answering runs' consistency under the last; then how
    many of the errors every tower makes, and which."""
    summary = report["summary"]
    folds = len(report["folds"])
    lines = [f"{len(report['runs'])} runs (training seeds), {folds} fold{'s' if folds != 1 else ''}"]
    for metric, _ in METRICS:
        lines += ["", f"| {HEADINGS[metric]} | mean over folds | gain |", "| --- | --- | --- |"]
        for way, label in WAYS:
            row = summary[metric][way]
            gain = "" if way == "alone" else mean_interval_text(row["gain"])
            lines.append(f"| {label} | {mean_interval_text(row)} | {gain} |")
    answers = summary.get("answers") or {}
    if answers:
        counts = sorted(set(answers["runs"]))
        runs = (
            f"{counts[0]} run{'s' if counts[0] != 1 else ''}"
            if len(counts) == 1
            else f"{counts[0]}-{counts[-1]} runs"
        )
        lines.append(f"| towers of the runs that answered ({runs}) | "
                     f"{mean_interval_text(answers['classifier_consistency'])} | |")  # fmt: skip
        for key, label in ANSWERS:
            lines.append(f"| {label} | {mean_interval_text(answers[key])} | |")
    shared = summary["shared_errors"]
    paragraphs = [
        f"Misclassified (3 classes) by at least one tower: {shared['wrong_in_some']} images; by every "
        f"tower: {shared['wrong_in_every']} ({100 * shared['share']:.0f}%; towers erring independently "
        f"at their rates on each class would share {100 * shared['share_if_independent']:.0f}%)."
    ]
    if shared["mistakes"]:
        listed = ", ".join(
            f"{mistake} {count}" for mistake, count in Counter(shared["mistakes"]).most_common()
        )
        paragraphs.append(f"Those every tower gets wrong (gold -> the towers' average): {listed}.")
    for paragraph in paragraphs:
        lines += ["", textwrap.fill(paragraph, width=80)]
    return "\n".join(lines)


def draw_heldout_answers(axis: Any, folds: dict[int, dict[str, Any]], consistency: dict[str, Any]) -> None:
    """The held-out wordings' consistency of the runs that answered, as crosses beside each fold
    (none drawn, nor named in the legend, when no run answered); the axis starts low enough to
    show every value."""
    values = [*consistency["alone"]["per_fold"], *consistency["towers"]["per_fold"]]
    label: str | None = "回答（未见问法）/ answers, held-out wordings"
    for index, fold in enumerate(folds.values()):
        crosses = [row[HELDOUT_CONSISTENCY] for row in fold["answers"] if answered_both(row)]
        if crosses:
            axis.scatter(
                [index + 0.3] * len(crosses), crosses, marker="x", color="black", zorder=4, label=label
            )
            label, values = None, values + crosses
    axis.set_ylim(min(60.0, min(values) - 5), 100)


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Per fold and metric: the seeds' towers alone (dots), mirrored and averaged (bars); on the
    consistency panel also the held-out wordings' consistency of the runs that answered (crosses)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_zh.fonts import cjk_rc_params

    folds, summary = report["folds"], report["summary"]
    bars = ((0.05, "mirrored", "tab:blue"), (0.3, "towers", "tab:orange"))
    with plt.rc_context(cjk_rc_params()):
        width = 1.0 + len(METRICS) * (0.6 + 0.9 * len(folds))
        figure, axes = plt.subplots(1, len(METRICS), figsize=(width, 4.1), dpi=110)
        for axis, (metric, title) in zip(axes, METRICS, strict=True):
            for index, fold in enumerate(folds.values()):
                singles = [row[metric] for row in fold["alone"]]
                axis.scatter([index - 0.2] * len(singles), singles, color="tab:gray", zorder=3,
                             label=WAYS[0][1] if index == 0 else None)  # fmt: skip
            for offset, way, color in bars:
                label = dict(WAYS)[way]
                axis.bar([i + offset for i in range(len(folds))], summary[metric][way]["per_fold"],
                         width=0.22, color=color, label=label)  # fmt: skip
            axis.axhline(TARGETS[metric], color="tab:green", linestyle="--", label="目标 / target")
            axis.set_xticks(range(len(folds)), [f"折 {fold}" for fold in folds])
            axis.set_title(title)
            axis.set_ylim(0, 100)
            if metric == "classifier_consistency":
                draw_heldout_answers(axis, folds, summary[metric])
            axis.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel("平衡准确率 / balanced accuracy, %")
        axes[-1].set_ylabel("一致率 / consistency, %")
        handles, labels = axes[-1].get_legend_handles_labels()
        figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
        share = 100 * summary["shared_errors"]["share"]
        independent = 100 * summary["shared_errors"]["share_if_independent"]
        figure.suptitle(
            f"图像塔的错误：{share:.0f}% 为所有塔共有（若彼此独立：{independent:.0f}%）"
            f" / errors shared by every tower: {share:.0f}% ({independent:.0f}% if independent)",
            fontsize=10,
        )
        figure.tight_layout(rect=(0, 0.07, 1, 1))
        figure.savefig(path)
        plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys

    from ultra.logs import configure_logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="ultra.train.cv outputs")
    parser.add_argument("--figure", type=Path, default=None, help="also draw the folds (.png)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        report = compare_runs(args.runs)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201 - a command-line entry point
        raise SystemExit(2) from None
    print(report_markdown(report))  # noqa: T201
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.figure:
        print(plot_report(report, args.figure))  # noqa: T201


if __name__ == "__main__":
    main()
