"""A picture of the phantom pre-training images beside real BUSI images, so a reader can judge
what the encoders learn first (rows: the three phantom findings, then BUSI's three classes; speckle
compresses badly, so the docs keep it as JPEG).

    python -m ultra.train.phantom_figure docs/figures/tiny-zh-phantoms.jpg [--busi ../shared/data/busi]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from data_zh.builders.phantom import FINDINGS, render_phantom
from data_zh.fonts import cjk_rc_params

FINDING_ZH = {"none": "仿体：无病灶", "oval": "仿体：椭圆形肿块", "irregular": "仿体：不规则肿块"}
BUSI_ZH = {"normal": "BUSI：正常", "benign": "BUSI：良性", "malignant": "BUSI：恶性"}


def busi_examples(root: Path, per_class: int, seed: int) -> dict[str, list[np.ndarray]]:
    """A seeded draw of BUSI train-split images per class, normal first (grayscale, 256 px)."""
    from PIL import Image

    from data_zh.converters.busi import read_busi_labels
    from ultra.train.examples import draw_examples

    labels = {path: row["label"] for path, row in read_busi_labels(root).items()}
    drawn = draw_examples(seed, labels, per_class, split="train")
    return {
        label: [
            np.asarray(Image.open(root / example.source).convert("L").resize((256, 256)))
            for example in drawn
            if example.label == label
        ]
        for label in BUSI_ZH
    }


def plot_phantom_examples(
    path: str | Path, per_row: int = 5, seed: int = 0, busi_root: Path | None = None
) -> Path:
    """Rows of phantoms per finding (and of BUSI images per class when ``busi_root`` is given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        (
            FINDING_ZH[finding],
            [
                render_phantom(finding, np.random.default_rng([seed, finding_index, i])).pixels
                for i in range(per_row)
            ],
        )
        for finding_index, finding in enumerate(FINDINGS)
    ]
    if busi_root is not None:
        rows += [
            (BUSI_ZH[label], images) for label, images in busi_examples(busi_root, per_row, seed).items()
        ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(cjk_rc_params()):
        figure, axes = plt.subplots(len(rows), per_row, figsize=(1.6 * per_row, 1.75 * len(rows)), dpi=100)
        for axis_row, (title, images) in zip(np.atleast_2d(axes), rows, strict=True):
            for column, axis in enumerate(axis_row):
                axis.axis("off")
                if column < len(images):
                    axis.imshow(images[column], cmap="gray", vmin=0, vmax=255)
            axis_row[0].set_title(title, loc="left", fontsize=10)
        figure.tight_layout()
        figure.savefig(path, pil_kwargs={"quality": 85} if path.suffix.lower() in (".jpg", ".jpeg") else None)
        plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--busi", type=Path, default=None, help="BUSI folder: add real images below")
    parser.add_argument("--per-row", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(plot_phantom_examples(args.output, args.per_row, args.seed, args.busi))  # noqa: T201


if __name__ == "__main__":
    main()
