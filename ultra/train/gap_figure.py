"""Does the VLM carry its tower's decision? Per-fold answers minus plain classifier, several CV runs.

``python -m ultra.train.gap_figure OUT.png NAME=cv.json [NAME=cv.json ...]`` draws, for each run,
every fold's lesion and malignancy gap (the answers' balanced accuracy minus the plain
classifier's in the same fold) against the issue's ±3-point band. Older ``cv.json`` files without
the gap columns work: the gaps are computed from the fold scores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ultra.train.cv import answer_minus_classifier

QUESTIONS = (("lesion", "病灶有无 / lesion"), ("malignancy", "良恶性 / malignancy"))
TARGET_GAP = 3.0


def fold_gaps(report: dict[str, Any], source: str) -> dict[str, list[float]]:
    """``{question: [gap per fold]}`` of one ``cv.json``; a run without answers or classifier
    scores (e.g. ``--classifier-only``) is an error naming the file."""
    gaps: dict[str, list[float]] = {question: [] for question, _ in QUESTIONS}
    for fold in report.get("folds", []):
        computed = answer_minus_classifier(fold["scores"])
        for question in gaps:
            if f"{question}_minus_classifier" in computed:
                gaps[question].append(computed[f"{question}_minus_classifier"])
    if not all(gaps.values()):
        raise ValueError(f"{source}: no fold has both the answers' and the classifier's scores")
    return gaps


def plot_gaps(runs: dict[str, dict[str, list[float]]], path: Path) -> Path:
    """One column of dots per run and question; the shaded band is the ±3-point target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_zh.fonts import cjk_rc_params

    with plt.rc_context(cjk_rc_params()):
        figure, axis = plt.subplots(figsize=(3.6 + 1.6 * len(runs), 4), dpi=110)
        axis.axhspan(-TARGET_GAP, TARGET_GAP, color="tab:green", alpha=0.15, label="目标 ±3 / target")
        axis.axhline(0, color="black", linewidth=0.8)
        for offset, (question, label) in zip((-0.15, 0.15), QUESTIONS, strict=True):
            xs, ys = [], []
            for index, gaps in enumerate(runs.values()):
                count = len(gaps[question])  # folds side by side, so equal gaps stay visible
                xs += [index + offset + 0.04 * (fold - (count - 1) / 2) for fold in range(count)]
                ys += gaps[question]
            axis.scatter(xs, ys, label=label, alpha=0.8)
        axis.set_xticks(range(len(runs)), list(runs))
        axis.set_ylabel("回答 - 分类器（同一折）/ answers - classifier, %")
        axis.set_title("VLM 是否沿用其图像塔的判断 / does the VLM follow its tower?")
        axis.grid(axis="y", alpha=0.3)
        axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the picture (.png, .jpg)")
    parser.add_argument("runs", nargs="+", metavar="NAME=CV.JSON")
    args = parser.parse_args(argv)
    try:
        runs = {}
        for item in args.runs:
            name, separator, file = item.partition("=")
            if not separator or not name:
                raise ValueError(f"{item}: expected NAME=path/to/cv.json")
            try:
                report = json.loads(Path(file).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as error:
                raise ValueError(f"{file}: not a readable cv.json ({error})") from None
            runs[name] = fold_gaps(report, file)
        print(plot_gaps(runs, args.output))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
