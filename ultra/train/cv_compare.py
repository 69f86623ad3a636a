"""Compare recipe variants over several training seeds in the same CV folds.

    python -m ultra.train.cv_compare BASE=a/cv.json,b/cv.json VARIANT=c/cv.json,d/cv.json
                                     [--metrics classifier_lesion_bacc,...] [--figure OUT.png]

One 5-fold mean moves 5-10 points with the training seed alone, so one run per variant cannot
choose between variants. Each variant here is several ``ultra.train.cv`` runs of one recipe with
different training seeds (``--set seed=N``) on the same folds (same ``--folds``, ``--seed``,
training fraction, not smoke runs; anything else, a file given twice or a training seed given
twice is refused). A fold's score is averaged over the seeds first, so the interval is over
folds, as in ``cv.json`` (and, as there, optimistic: folds share training images); every
variant is paired by fold with the first one. The seed spread (standard deviation of the
seeds' k-fold means) says how far one run would have misled.
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
    "classifier_consistency": "分类器：随其回答的类型一致率",
    "lesion_bacc": "回答：病灶有无",
    "malignancy_bacc": "回答：良恶性",
    "heldout_lesion_bacc": "未见问法：病灶有无",
    "lesion_minus_classifier": "回答 - 分类器：病灶有无",
    "malignancy_minus_classifier": "回答 - 分类器：良恶性",
    "answer_type_consistency": "回答类型一致率",
    "heldout_answer_type_consistency": "未见问法：回答类型一致率",
    "blind_lesion_bacc": "空白图：病灶有无",
    "blind_malignancy_bacc": "空白图：良恶性",
}


@dataclass(frozen=True)
class Variant:
    """One recipe's CV runs: ``runs[s][fold]`` is the fold's scores in training seed ``s``."""

    name: str
    runs: list[dict[int, dict[str, float]]]

    def folds(self, metric: str) -> list[int]:
        """The folds every seed scored on ``metric`` (all numbers below use only these)."""
        shared = set.intersection(
            *({f for f, scores in run.items() if metric in scores} for run in self.runs)
        )
        return sorted(shared)

    def fold_means(self, metric: str) -> dict[int, float]:
        """Each fold's score averaged over the seeds."""
        return {fold: statistics.fmean(run[fold][metric] for run in self.runs) for fold in self.folds(metric)}

    def seed_means(self, metric: str) -> list[float]:
        """Each seed's mean over the folds: what one run would have reported."""
        folds = self.folds(metric)
        if not folds:
            return []
        return [statistics.fmean(run[fold][metric] for fold in folds) for run in self.runs]


def read_variant(name: str, files: Sequence[Path]) -> tuple[Variant, tuple]:
    """A variant from its ``cv.json`` files and what they must share (folds, fold seed, training
    fraction, smoke); files that disagree, repeat, or repeat a training seed are an error naming
    the file."""
    runs, folds, training_seeds = [], None, set()
    if len({Path(file).resolve() for file in files}) < len(files):
        raise ValueError(f"{name}: a cv.json is given twice (its seed would count twice)")
    for file in files:
        try:
            report = json.loads(Path(file).read_text(encoding="utf-8"))
            assignment = (
                int(report["k"]),
                int(report["seed"]),
                float(report.get("train_fraction", 1.0)),
                bool(report.get("smoke", False)),
            )
            training_seed = report.get("training_seed")
            scores = {
                int(fold["fold"]): {**fold["scores"], **answer_minus_classifier(fold["scores"])}
                for fold in report["folds"]
            }
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{file}: not a readable cv.json ({error})") from None
        if folds is not None and assignment != folds:
            raise ValueError(f"{file}: {describe(assignment)} differ from the other runs' {describe(folds)}")
        if training_seed is not None and training_seed in training_seeds:
            raise ValueError(f"{file}: training seed {training_seed} is already among {name}'s runs")
        training_seeds.add(training_seed)
        folds = assignment
        runs.append(scores)
    return Variant(name, runs), folds


def describe(assignment: tuple) -> str:
    """What a run's folds are, in words (for refusals)."""
    k, seed, fraction, smoke = assignment
    return f"folds (k={k}, seed={seed}, train fraction {fraction:g}{', smoke' if smoke else ''})"


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
                "n_folds": len(folds),
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
        lines += [f"| variant | mean [95% CI over folds] | seeds (means over folds) | paired − {base} |"]
        lines += ["| --- | --- | --- | --- |"]
        for name, row in rows.items():
            seeds = ", ".join(f"{value:.1f}" for value in row["seed_means"])
            spread = f"; sd {row['seed_sd']:.1f}" if row["seed_sd"] is not None else ""
            paired = ""
            if "paired" in row:
                up = f"{row['paired']['up']}/{row['paired']['n_folds']} folds up"
                paired = f"{mean_interval_text(row['paired'])} ({up})"
            folds = f"{row['n_folds']} folds × {row['seeds']} seeds"
            lines.append(f"| {name} | {mean_interval_text(row)} ({folds}) | {seeds}{spread} | {paired} |")
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
            values = [value for row in rows.values() for value in row["seed_means"]]
            axis.set_ylim(max(-100.0, min(values) - 10), min(100.0, max(values) + 10))
            axis.axhline(0, color="black", linewidth=0.8)
            axis.grid(axis="y", alpha=0.3)
        axes[0][0].set_ylabel("百分点 / percentage points")
        figure.suptitle("点：每个训练种子的各折均值；柱：种子均值 / dots: seeds, bar: mean", fontsize=9)
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
            if any(variant.name == name for variant in variants):
                raise ValueError(f"{name}: the variant name is given twice")
            variant, folds = read_variant(name, [Path(file) for file in files.split(",")])
            if assignment is not None and folds != assignment:
                raise ValueError(
                    f"{name}: {describe(folds)} differ from the first variant's {describe(assignment)}"
                )
            assignment = folds
            variants.append(variant)
        table = compare(variants, args.metrics.split(","))
        print(comparison_markdown(table, variants[0].name))  # noqa: T201 - a command-line entry point
        if args.figure is not None:
            print(plot_comparison(table, args.figure))  # noqa: T201
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
