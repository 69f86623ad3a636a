"""Are a recipe's tower errors noise or what the towers learn? Its CV runs, several training seeds.

    python -m ultra.train.tower_errors RUN_DIR RUN_DIR ... [--figure OUT.png]

Each ``RUN_DIR`` is an ``ultra.train.cv`` output (its ``cv.json`` and fold folders) of one recipe
whose tower has a decision head (``model.decision_classes``), with another training seed on the
same folds. Every fold's final tower classifies the fold's held-out images three ways: alone,
averaged with the mirrored image (the training augmentation's flip), and averaged over the seeds'
towers. Averaging removes what varies between views and between training runs; if it does not
raise the balanced accuracy, and most misclassified images are misclassified by every tower, the
errors are systematic: only other features or other data move them, not more seeds or views.
Scores are the CV's own (:func:`ultra.train.cv.classifier_scores`), so a tower alone reproduces
its ``cv.json`` row (up to near-ties when the run exported its weights in float16).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ultra.train.cv import classifier_scores, mean_interval, mean_interval_text
from ultra.train.cv_compare import read_variant

METRICS = (("classifier_malignancy_bacc", "良性/恶性/正常"), ("classifier_lesion_bacc", "病灶有无"))
TARGETS = {"classifier_malignancy_bacc": 78.0, "classifier_lesion_bacc": 80.0}  # issue #15's answer targets
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


def fold_views(recipe_dir: Path) -> FoldViews:
    """The fold's final tower on the held-out images its CV run validated on."""
    from PIL import ImageOps

    from ultra.media import read_record_images
    from ultra.model import load_model
    from ultra.train.config import TrainConfig
    from ultra.train.runner import Trainer
    from ultra.train.supervision import find_vision_fusion, labelled_images

    config = TrainConfig.model_validate_json((recipe_dir / "config.json").read_text(encoding="utf-8"))
    model, _ = load_model(recipe_dir / "final")
    _, tower = find_vision_fusion(model)
    if tower.decision_head is None:
        raise ValueError(
            f"{recipe_dir}: the tower has no decision head (a recipe with model.decision_classes)"
        )
    items, classes = labelled_images(
        Trainer(config, show_progress=False).validation_records(), tower.decision_classes
    )
    tower.eval()
    probabilities = []
    with torch.no_grad():
        for item in items:
            image = read_record_images(item.record, allow_outside_root=True)[0]
            fused = tower(tower.preprocess([image, ImageOps.mirror(image)]), decision=False)
            probabilities.append(torch.softmax(tower.decision_logits(fused).float(), dim=-1))
    images = [str(item.record.media.images[0]) for item in items]
    return FoldViews(classes, images, [item.label for item in items], torch.stack(probabilities))


def scores(classes: Sequence[str], gold: Sequence[int], probabilities: torch.Tensor) -> dict[str, float]:
    """Lesion and 3-class balanced accuracy (percent) of the argmax, as the CV scores a tower."""
    confusion: dict[str, dict[str, int]] = {}
    for truth, guess in zip(gold, probabilities.argmax(dim=-1).tolist(), strict=True):
        row = confusion.setdefault(classes[truth], {})
        row[classes[guess]] = row.get(classes[guess], 0) + 1
    return classifier_scores(confusion)


def compare_fold(towers: Sequence[FoldViews], source: str) -> dict[str, Any]:
    """One fold: each tower alone and mirrored, the towers averaged, and the share of the
    misclassified images that every tower misclassifies (3 classes, views as stored)."""
    first = towers[0]
    if any(tower.images != first.images or tower.classes != first.classes for tower in towers):
        raise ValueError(f"{source}: the runs' towers were not validated on the same images and classes")
    alone = [scores(first.classes, first.gold, tower.probabilities[:, 0]) for tower in towers]
    mirrored = [scores(first.classes, first.gold, tower.probabilities.mean(dim=1)) for tower in towers]
    averaged = torch.stack([tower.probabilities[:, 0] for tower in towers]).mean(dim=0)
    gold = torch.tensor(first.gold)
    wrong = torch.stack([tower.probabilities[:, 0].argmax(dim=-1) != gold for tower in towers])
    some, every = int(wrong.any(dim=0).sum()), int(wrong.all(dim=0).sum())
    rates = wrong.float().mean(dim=1)  # each tower's error rate: what independent errors would share
    shared = Counter(  # what the images every tower gets wrong are, and are taken for
        f"{first.classes[first.gold[index]]} -> {first.classes[int(averaged[index].argmax())]}"
        for index in wrong.all(dim=0).nonzero().flatten().tolist()
    )
    return {
        "n_images": len(first.gold),
        "alone": alone,
        "mirrored": mirrored,
        "towers": scores(first.classes, first.gold, averaged),
        "wrong_in_some": some,
        "wrong_in_every": every,
        "independent_some": len(first.gold) * float(1 - (1 - rates).prod()),
        "independent_every": len(first.gold) * float(rates.prod()),
        "shared_mistakes": dict(shared),
    }


def compare_runs(run_dirs: Sequence[Path]) -> dict[str, Any]:
    """Every fold that all runs scored; the runs must share their folds (as ``cv_compare``)."""
    files = [Path(run) / "cv.json" for run in run_dirs]
    variant, _ = read_variant("towers", files)
    folds = set.intersection(*(set(run) for run in variant.runs))
    report: dict[str, Any] = {"runs": [str(run) for run in run_dirs], "folds": {}}
    for fold in sorted(folds):
        towers = [fold_views(Path(run) / f"fold{fold}" / "recipe") for run in run_dirs]
        report["folds"][fold] = compare_fold(towers, f"fold {fold}")
    report["summary"] = summarize(report["folds"])
    return report


def summarize(folds: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per metric and way: mean [t-interval over folds] of the fold scores (a fold's single towers
    averaged over the seeds first), the gain over one tower paired by fold, and the pooled share
    of misclassified images that every tower misclassifies, beside the share that towers erring
    independently at the same rates would give."""
    summary: dict[str, Any] = {}
    for metric, _ in METRICS:
        alone = [statistics.fmean(row[metric] for row in fold["alone"]) for fold in folds.values()]
        ways = {
            "alone": alone,
            "mirrored": [
                statistics.fmean(row[metric] for row in fold["mirrored"]) for fold in folds.values()
            ],
            "towers": [fold["towers"][metric] for fold in folds.values()],
        }
        summary[metric] = {
            way: {
                **mean_interval(values),
                "per_fold": values,
                "gain": mean_interval([value - base for value, base in zip(values, alone, strict=True)]),
            }
            for way, values in ways.items()
        }

    def pooled(key: str) -> float:
        return sum(fold[key] for fold in folds.values())

    summary["shared_errors"] = {
        "wrong_in_some": pooled("wrong_in_some"),
        "wrong_in_every": pooled("wrong_in_every"),
        "share": ratio(pooled("wrong_in_every"), pooled("wrong_in_some")),
        "share_if_independent": ratio(pooled("independent_every"), pooled("independent_some")),
        "mistakes": {},
    }
    for fold in folds.values():
        for mistake, count in fold["shared_mistakes"].items():
            summary["shared_errors"]["mistakes"][mistake] = (
                summary["shared_errors"]["mistakes"].get(mistake, 0) + count
            )
    return summary


def ratio(part: float, whole: float) -> float:
    """``part / whole``; NaN when nothing was misclassified."""
    return part / whole if whole else float("nan")


def report_markdown(report: dict[str, Any]) -> str:
    """The summary table, then what share of the errors every tower makes."""
    summary = report["summary"]
    lines = [
        f"{len(report['runs'])} runs (training seeds), {len(report['folds'])} folds",
        "",
        "| tower | 3 classes | gain | lesion vs normal | gain |",
        "| --- | --- | --- | --- | --- |",
    ]
    for way, label in WAYS:
        cells = []
        for metric, _ in METRICS:
            row = summary[metric][way]
            gain = "" if way == "alone" else mean_interval_text(row["gain"])
            cells += [mean_interval_text(row), gain]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    shared = summary["shared_errors"]
    lines += [
        "",
        f"Misclassified (3 classes) by at least one tower: {shared['wrong_in_some']} images; "
        f"by every tower: {shared['wrong_in_every']} ({100 * shared['share']:.0f}%; "
        f"{100 * shared['share_if_independent']:.0f}% if the towers erred independently at their rates).",
    ]
    if shared["mistakes"]:
        mistakes = sorted(shared["mistakes"].items(), key=lambda item: -item[1])
        lines.append(
            "Those every tower gets wrong (gold -> the towers' average): "
            + ", ".join(f"{m} {n}" for m, n in mistakes)
            + "."
        )
    return "\n".join(lines)


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Per fold and metric: the seeds' towers alone (dots), mirrored and averaged (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_zh.fonts import cjk_rc_params

    folds = report["folds"]
    with plt.rc_context(cjk_rc_params()):
        figure, axes = plt.subplots(
            1, len(METRICS), figsize=(3.2 + 1.1 * len(folds) * len(METRICS), 3.8), dpi=110
        )
        for axis, (metric, title) in zip(axes, METRICS, strict=True):
            for index, fold in enumerate(folds.values()):
                singles = [row[metric] for row in fold["alone"]]
                label = WAYS[0][1] if index == 0 else None
                axis.scatter([index - 0.2] * len(singles), singles, color="tab:gray", label=label, zorder=3)
                for offset, (way, way_label), color in (
                    (0.05, WAYS[1], "tab:blue"),
                    (0.3, WAYS[2], "tab:orange"),
                ):
                    value = (
                        statistics.fmean(row[metric] for row in fold[way])
                        if way == "mirrored"
                        else fold[way][metric]
                    )
                    axis.bar(
                        index + offset,
                        value,
                        width=0.22,
                        color=color,
                        label=way_label if index == 0 else None,
                    )
            axis.axhline(TARGETS[metric], color="tab:green", linestyle="--", label="目标 / target")
            axis.set_xticks(range(len(folds)), [f"折 {fold}" for fold in folds])
            axis.set_title(title)
            axis.set_ylim(0, 100)
            axis.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel("平衡准确率 / balanced accuracy, %")
        axes[-1].legend(loc="lower right", fontsize=7)
        shared = report["summary"]["shared_errors"]
        share, independent = 100 * shared["share"], 100 * shared["share_if_independent"]
        figure.suptitle(
            f"图像塔的错误：{share:.0f}% 为所有塔共有（若彼此独立：{independent:.0f}%）"
            f" / errors shared by every tower: {share:.0f}% ({independent:.0f}% if independent)",
            fontsize=10,
        )
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="ultra.train.cv outputs")
    parser.add_argument("--figure", type=Path, default=None, help="also draw the folds (.png)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers")
    args = parser.parse_args(argv)
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
