"""Compare recipe variants over several training seeds in the same CV folds.

    python -m ultra.train.cv_compare BASE=a/cv.json,b/cv.json VARIANT=c/cv.json,d/cv.json
                                     [--metrics classifier_lesion_bacc,...] [--figure OUT.png]

One 5-fold mean moves 5-10 points with the training seed alone, so one run per variant cannot
choose between variants. Each variant here is several ``ultra.train.cv`` runs of one recipe with
different training seeds (``--set seed=N``) on the same folds (same ``--folds`` and ``--seed``;
anything else is refused). A fold's score is averaged over the seeds first, so the interval is
over folds, as in ``cv.json``; every variant is paired by fold with the first one. The seed
spread (standard deviation of the seeds' 5-fold means) says how far one run would have misled.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ultra.train.cv import REPORTED, answer_minus_classifier, mean_interval, mean_interval_text

LABELS = dict(REPORTED)
DEFAULT_METRICS = ("classifier_lesion_bacc", "classifier_malignancy_bacc")
METRIC_NAMES_ZH = {
    "classifier_lesion_bacc": "分类器：病灶有无",
    "classifier_malignancy_bacc": "分类器：良性/恶性/正常",
    "lesion_bacc": "回答：病灶有无",
    "malignancy_bacc": "回答：良恶性",
}


@dataclass(frozen=True)
class Variant:
    """One recipe's CV runs: ``runs[s][fold]`` is the fold's scores in training seed ``s``."""

    name: str
    runs: list[dict[int, dict[str, float]]]

    def fold_means(self, metric: str) -> dict[int, float]:
        """Each fold's score averaged over the seeds (folds some seed lacks are left out)."""
        folds = set.intersection(*(set(run) for run in self.runs))
        return {
            fold: statistics.fmean(run[fold][metric] for run in self.runs)
            for fold in sorted(folds)
            if all(metric in run[fold] for run in self.runs)
        }

    def seed_means(self, metric: str) -> list[float]:
        """Each seed's mean over the folds: what one run would have reported."""
        return [
            statistics.fmean(scores[metric] for scores in run.values() if metric in scores)
            for run in self.runs
            if any(metric in scores for scores in run.values())
        ]


def read_variant(name: str, files: Sequence[Path]) -> tuple[Variant, tuple[int, int]]:
    """A variant from its ``cv.json`` files and their (folds, fold seed); files that disagree on
    the folds are an error naming the file."""
    runs, folds = [], None
    for file in files:
        try:
            report = json.loads(Path(file).read_text(encoding="utf-8"))
            assignment = (int(report["k"]), int(report["seed"]))
            scores = {
                int(fold["fold"]): {**fold["scores"], **answer_minus_classifier(fold["scores"])}
                for fold in report["folds"]
            }
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{file}: not a readable cv.json ({error})") from None
        if folds is not None and assignment != folds:
            raise ValueError(f"{file}: folds {assignment} differ from the other runs' {folds}")
        folds = assignment
        runs.append(scores)
    return Variant(name, runs), folds


def compare(variants: Sequence[Variant], metrics: Sequence[str]) -> dict[str, Any]:
    """Per metric and variant: mean [t-interval over folds], seed spread, and the paired
    difference by fold against the first variant (with how many folds went up)."""
    base = variants[0]
    table: dict[str, Any] = {}
    for metric in metrics:
        rows = {}
        base_folds = base.fold_means(metric)
        for variant in variants:
            folds = variant.fold_means(metric)
            if not folds:
                continue
            seeds = variant.seed_means(metric)
            row: dict[str, Any] = {
                **mean_interval(list(folds.values())),
                "seeds": len(variant.runs),
                "seed_means": seeds,
                "seed_sd": statistics.stdev(seeds) if len(seeds) > 1 else None,
            }
            shared = sorted(set(folds) & set(base_folds))
            if variant is not base and shared:
                diffs = [folds[fold] - base_folds[fold] for fold in shared]
                row["paired"] = {**mean_interval(diffs), "per_fold": diffs, "up": sum(d > 0 for d in diffs)}
            rows[variant.name] = row
        if rows:
            table[metric] = rows
    if not table:
        raise ValueError(f"no run has any of the metrics {list(metrics)}")
    return table


def comparison_markdown(table: dict[str, Any], base: str) -> str:
    """One block per metric: variants as rows (mean [interval], seeds, seed spread, paired)."""
    lines = []
    for metric, rows in table.items():
        lines += [f"**{LABELS.get(metric, metric)}** (`{metric}`)", ""]
        lines += [f"| variant | mean [95% CI over folds] | seeds (5-fold means) | paired − {base} |"]
        lines += ["| --- | --- | --- | --- |"]
        for name, row in rows.items():
            seeds = ", ".join(f"{value:.1f}" for value in row["seed_means"])
            spread = f"; sd {row['seed_sd']:.1f}" if row["seed_sd"] is not None else ""
            paired = ""
            if "paired" in row:
                up = f"{row['paired']['up']}/{row['paired']['n_folds']} folds up"
                paired = f"{mean_interval_text(row['paired'])} ({up})"
            lines.append(f"| {name} | {mean_interval_text(row)} | {seeds}{spread} | {paired} |")
        lines.append("")
    return "\n".join(lines)


def plot_comparison(table: dict[str, Any], path: Path) -> Path:
    """One panel per metric: each seed's 5-fold mean as a dot, the seeds' mean as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_zh.fonts import cjk_rc_params

    with plt.rc_context(cjk_rc_params()):
        figure, axes = plt.subplots(
            1, len(table), figsize=(1.2 + 2.6 * len(table), 3.8), dpi=110, squeeze=False
        )
        for axis, (metric, rows) in zip(axes[0], table.items(), strict=True):
            for index, row in enumerate(rows.values()):
                axis.bar(index, row["mean"], width=0.6, color="tab:blue", alpha=0.25)
                seeds = row["seed_means"]
                axis.scatter([index] * len(seeds), seeds, color="tab:blue", zorder=3)
            axis.set_xticks(range(len(rows)), list(rows))
            axis.set_title(METRIC_NAMES_ZH.get(metric, metric), fontsize=10)
            low = min(min(row["seed_means"]) for row in rows.values())
            axis.set_ylim(max(0.0, low - 10), 100)
            axis.grid(axis="y", alpha=0.3)
        axes[0][0].set_ylabel("平衡准确率 / balanced accuracy, %")
        figure.suptitle("点：每个训练种子的五折均值；柱：种子均值 / dots: seeds, bar: mean", fontsize=9)
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", metavar="NAME=CV.JSON[,CV.JSON...]")
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="comma-separated cv.json keys")
    parser.add_argument("--figure", type=Path, default=None, help="also draw the seeds' means (.png)")
    args = parser.parse_args(argv)
    try:
        variants, assignment = [], None
        for item in args.variants:
            name, separator, files = item.partition("=")
            if not separator or not name or not files:
                raise ValueError(f"{item}: expected NAME=path/to/cv.json[,path/to/cv.json...]")
            variant, folds = read_variant(name, [Path(file) for file in files.split(",")])
            if assignment is not None and folds != assignment:
                raise ValueError(f"{name}: folds {folds} differ from the first variant's {assignment}")
            assignment = folds
            variants.append(variant)
        table = compare(variants, args.metrics.split(","))
        print(comparison_markdown(table, variants[0].name))  # noqa: T201 - a command-line entry point
        if args.figure is not None:
            print(plot_comparison(table, args.figure))  # noqa: T201
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
