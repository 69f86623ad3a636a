"""How the plain classifier (the tower) grows with training images: limited by data or recipe?

    python -m ultra.train.learning_curve configs/tiny-zh.yaml --fractions 0.25,0.5,0.75,1 [--folds 5]

For each fraction the recipe's tower (its leading classification stages, the plain classifier)
is cross-validated inside the BUSI train split on a stratified fraction of each fold's training
images (:func:`ultra.train.cv.run_cv` with ``classifier_only`` and ``train_fraction``); the held-out
folds are always whole, so every point is scored on the same images. Writes
``learning_curve.json``, ``learning_curve.md`` and ``learning_curve.png`` (Chinese labels).
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ultra.train.config import TrainConfig
from ultra.train.model_card import TARGETS

TARGET_OF = {key: threshold for key, _, threshold in TARGETS}

logger = logging.getLogger(__name__)

# (classifier metric, label, the VLM target it is the reference for: a dashed line on the picture)
CURVES = (
    ("classifier_lesion_bacc", "病灶有无 / lesion vs normal", TARGET_OF["lesion_bacc"]),
    ("classifier_malignancy_bacc", "良性/恶性/正常 / 3 classes", TARGET_OF["malignancy_bacc"]),
)


def run_learning_curve(
    config: TrainConfig,
    fractions: Sequence[float],
    k: int = 5,
    seed: int = 0,
    *,
    output_dir: Path | None = None,
    max_steps: int | None = None,
    model_builder: Any = None,
) -> dict[str, Any]:
    """Classifier-only CV at each training fraction; the points, their table and their picture."""
    from ultra.train.cv import run_cv

    bad = [fraction for fraction in fractions if not 0 < fraction <= 1]
    if bad or not fractions:
        raise ValueError(f"--fractions must be numbers in (0, 1], got {list(fractions)}")
    root = Path(output_dir or Path(config.output_dir) / "learning-curve")
    points = []
    for fraction in fractions:
        logger.info("learning curve: %.0f%% of each fold's training images", 100 * fraction)
        report = run_cv(
            config,
            k,
            seed,
            output_dir=root / f"fraction-{fraction:g}",
            max_steps=max_steps,
            model_builder=model_builder,
            classifier_only=True,
            train_fraction=fraction,
        )
        points.append(
            {
                "fraction": fraction,
                "mean_train_images": statistics.fmean(fold["n_train_images"] for fold in report["folds"]),
                **{key: report["summary"][key] for key, _, _ in CURVES if key in report["summary"]},
            }
        )
    result = {"k": k, "seed": seed, "points": points, "smoke": max_steps is not None}
    root.mkdir(parents=True, exist_ok=True)
    (root / "learning_curve.json").write_text(
        json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    (root / "learning_curve.md").write_text(learning_curve_markdown(result) + "\n", encoding="utf-8")
    plot_learning_curve(result, root / "learning_curve.png")
    return result


def learning_curve_markdown(result: dict[str, Any]) -> str:
    """One row per fraction: training images per fold and each balanced accuracy with its interval."""
    from ultra.train.cv import mean_interval_text

    header = "| training images per fold (fraction) | " + " | ".join(label for _, label, _ in CURVES) + " |"
    lines = [
        f"Plain classifier (the recipe's leading classification stages), {result['k']}-fold CV inside the BUSI train split; "
        "held-out folds always whole. Mean held-out balanced accuracy % [95% t-interval].",
        "",
        header,
        "| --- |" + " --- |" * len(CURVES),
    ]
    for point in result["points"]:
        cells = []
        for key, _, _ in CURVES:
            row = point.get(key)
            cells.append(mean_interval_text(row) if row else "–")
        lines.append(
            f"| {point['mean_train_images']:.0f} ({point['fraction']:g}) | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def plot_learning_curve(result: dict[str, Any], path: Path) -> Path:
    """Balanced accuracy against training images, with fold intervals and the issue's targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_zh.fonts import cjk_rc_params

    with plt.rc_context(cjk_rc_params()):
        figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
        sizes = [point["mean_train_images"] for point in result["points"]]
        for key, label, target in CURVES:
            rows = [point.get(key) for point in result["points"]]
            if not all(rows):
                continue
            means = [row["mean"] for row in rows]
            errors = [
                [row["mean"] - row["ci95"][0] for row in rows],
                [row["ci95"][1] - row["mean"] for row in rows],
            ]
            line = axis.errorbar(sizes, means, yerr=errors, marker="o", capsize=3, label=label)
            axis.axhline(target, linestyle="--", linewidth=0.9, color=line[0].get_color(), alpha=0.7)
        axis.set_xlabel("每折训练图像数 / training images per fold")
        axis.set_ylabel("平衡准确率 % / balanced accuracy %")
        axis.set_title("分类器学习曲线（虚线：VLM 目标）/ classifier learning curve (dashed: VLM targets)")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right")
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys

    from ultra.config_io import ConfigError, add_overrides_argument
    from ultra.logs import configure_logging
    from ultra.train.config import load_train_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--fractions", default="0.25,0.5,0.75,1", help="comma-separated, each in (0, 1]")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    parser.add_argument("--max-steps", type=int, default=None, help="cap the stage (a smoke run)")
    parser.add_argument("--output-dir", type=Path, default=None, help="default: <output_dir>/learning-curve")
    add_overrides_argument(parser)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        try:
            fractions = [float(part) for part in args.fractions.split(",")]
        except ValueError:
            raise ValueError(f"--fractions must be numbers in (0, 1], got {args.fractions!r}") from None
        config = load_train_config(args.config, args.overrides)
        result = run_learning_curve(
            config, fractions, args.folds, args.seed, output_dir=args.output_dir, max_steps=args.max_steps
        )
    except (ConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201 - a command-line entry point
        raise SystemExit(2) from None
    print(learning_curve_markdown(result))  # noqa: T201


if __name__ == "__main__":
    main()
