"""Tower errors over training seeds: each fold tower alone, mirrored and averaged, and how many of
their errors every tower makes."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from ultra.train import DataSource, TrainConfig
from ultra.train.config import ModelSource
from ultra.train.cv import run_cv
from ultra.train.tower_errors import FoldViews, compare_fold, compare_runs, fold_views, main, scores

CLASSES = ["benign", "malignant", "normal"]


def one_hot(predicted: list[int]) -> torch.Tensor:
    """Two identical views per image, all probability on the predicted class."""
    probabilities = torch.nn.functional.one_hot(torch.tensor(predicted), len(CLASSES)).float()
    return torch.stack([probabilities, probabilities], dim=1)


def test_shared_errors_are_counted_against_independent_towers():
    gold = [0, 1, 2, 2]
    same = [FoldViews(CLASSES, list("abcd"), gold, one_hot([0, 1, 2, 0])) for _ in range(2)]
    fold = compare_fold(same, "fold 0")
    assert (fold["wrong_in_some"], fold["wrong_in_every"]) == (1, 1)
    # each tower errs on a quarter: independent towers would share 1/16 of 4 images out of 7/16
    assert fold["independent_every"] == pytest.approx(0.25)
    assert fold["independent_some"] == pytest.approx(1.75)
    assert fold["shared_mistakes"] == {"normal -> benign": 1}
    other = FoldViews(CLASSES, list("abcd"), gold, one_hot([2, 1, 2, 2]))
    apart = compare_fold([same[0], other], "fold 0")
    assert (apart["wrong_in_some"], apart["wrong_in_every"]) == (2, 0)
    with pytest.raises(ValueError, match="fold 0: the runs' towers were not validated on the same images"):
        compare_fold([same[0], FoldViews(CLASSES, list("abce"), gold, one_hot([0, 1, 2, 0]))], "fold 0")


def tower_config(shared_data, output_dir, seed: int) -> TrainConfig:
    busi = str(shared_data / "busi")
    tower = ["*vision_tower*"]
    return TrainConfig(
        model=ModelSource(name_or_path="debug-tiny", decision_classes=CLASSES),
        data={"busi": DataSource(kind="busi", path=busi, split="train")},
        validation={"source": DataSource(kind="busi_vqa", path=busi, split="val")},
        stages=[  # a few steps, the whole held-out fold scored (a --max-steps smoke run samples it)
            {
                "name": "tower",
                "objective": "classification",
                "train": tower,
                "sources": ["busi"],
                "max_steps": 3,
            }
        ],
        output_dir=str(output_dir),
        seed=seed,
    )


@pytest.fixture(scope="module")
def tower_runs(shared_data, tmp_path_factory):
    """Fold 0 of two classifier-only CV runs (training seeds 0 and 1, the same folds)."""
    root = tmp_path_factory.mktemp("towers")
    runs = []
    for seed in (0, 1):
        run = root / f"seed{seed}"
        config = tower_config(shared_data, root / "unused", seed)
        run_cv(config, 5, only=[0], output_dir=run, classifier_only=True)
        runs.append(run)
    return runs


def test_each_tower_alone_reproduces_its_cv_row_and_the_towers_average(tower_runs, tmp_path):
    report = compare_runs(tower_runs)
    fold = report["folds"][0]
    for run, alone in zip(tower_runs, fold["alone"], strict=True):
        cv_row = json.loads((run / "cv.json").read_text(encoding="utf-8"))["folds"][0]["scores"]
        for metric, value in cv_row.items():
            assert alone[metric] == pytest.approx(value, abs=1e-9), metric
    views = [fold_views(run / "fold0" / "recipe") for run in tower_runs]
    assert views[0].images == views[1].images and len(views[0].images) == fold["n_images"]
    averaged = (views[0].probabilities[:, 0] + views[1].probabilities[:, 0]) / 2
    assert fold["towers"] == scores(CLASSES, views[0].gold, averaged)
    assert fold["mirrored"][0] == scores(CLASSES, views[0].gold, views[0].probabilities.mean(dim=1))
    assert 0 <= fold["wrong_in_every"] <= fold["wrong_in_some"] <= fold["n_images"]


def test_cli_writes_table_numbers_and_figure_and_refuses_other_folds(tower_runs, tmp_path, capsys):
    figure, numbers = tmp_path / "errors.png", tmp_path / "errors.json"
    main([*map(str, tower_runs), "--figure", str(figure), "--json", str(numbers)])
    printed = capsys.readouterr().out
    assert "| 多塔平均 / towers |" in printed and "by every tower" in printed
    assert figure.stat().st_size > 10_000 and json.loads(numbers.read_text(encoding="utf-8"))["folds"]["0"]
    moved = tmp_path / "other-folds"
    shutil.copytree(tower_runs[1], moved)
    report = json.loads((moved / "cv.json").read_text(encoding="utf-8"))
    (moved / "cv.json").write_text(json.dumps({**report, "seed": 1}), encoding="utf-8")
    with pytest.raises(SystemExit) as refused:
        main([str(tower_runs[0]), str(moved)])
    assert refused.value.code == 2
    assert "other-folds/cv.json" in capsys.readouterr().err
