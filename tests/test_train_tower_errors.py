"""Tower errors over training seeds: each fold tower alone, mirrored and averaged, and how many of
their errors every tower makes."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from rich.cells import cell_len

from ultra.train import DataSource, TrainConfig
from ultra.train.config import ModelSource
from ultra.train.cv import run_cv
from ultra.train.tower_errors import (
    FoldViews,
    compare_fold,
    compare_runs,
    fold_views,
    main,
    report_markdown,
    summarize,
    tower_scores,
)

CLASSES = ["benign", "malignant", "normal"]


def one_hot(predicted: list[int]) -> torch.Tensor:
    """Two identical views per image, all probability on the predicted class."""
    probabilities = torch.nn.functional.one_hot(torch.tensor(predicted), len(CLASSES)).float()
    return torch.stack([probabilities, probabilities], dim=1)


def test_shared_errors_are_counted_against_independent_towers():
    gold = [0, 1, 2, 2]
    same = [FoldViews(CLASSES, list("abcd"), gold, one_hot([0, 1, 2, 0])) for _ in range(2)]
    fold = compare_fold(same, ["run-a", "run-b"])
    assert (fold["wrong_in_some"], fold["wrong_in_every"]) == (1, 1)
    # each tower misses half of the normal images: independent towers would both miss a quarter of
    # the two (0.5 images) and at least one of them three quarters (1.5)
    assert fold["independent_every"] == pytest.approx(0.5)
    assert fold["independent_some"] == pytest.approx(1.5)
    assert fold["mistakes"] == {"normal -> benign": 1}
    other = FoldViews(CLASSES, list("abcd"), gold, one_hot([2, 1, 2, 2]))
    apart = compare_fold([same[0], other], ["run-a", "run-c"])
    assert (apart["wrong_in_some"], apart["wrong_in_every"]) == (2, 0)
    moved = FoldViews(CLASSES, list("abce"), gold, one_hot([0, 1, 2, 0]))
    with pytest.raises(
        ValueError, match="run-d: its tower was not validated on the images and classes of run-a"
    ):
        compare_fold([same[0], moved], ["run-a", "run-d"])


def test_summary_averages_seeds_per_fold_and_pairs_the_gains():
    gold = [0, 1, 2, 2]
    right = torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9], [0.05, 0.05, 0.9]])
    wrong = right.clone()
    wrong[3] = torch.tensor([0.6, 0.05, 0.35])  # a normal image taken for benign, less surely

    def tower(stored: torch.Tensor, mirrored: torch.Tensor, images: str) -> FoldViews:
        return FoldViews(CLASSES, list(images), gold, torch.stack([stored, mirrored], dim=1))

    folds = {  # fold 0: a right and a wrong tower; fold 1: two wrong ones, one mirrored right
        0: compare_fold([tower(right, right, "abcd"), tower(wrong, wrong, "abcd")], ["a", "b"]),
        1: compare_fold([tower(wrong, wrong, "efgh"), tower(wrong, right, "efgh")], ["a", "b"]),
    }
    summary = summarize(folds)
    one_wrong = 100 * (1 + 1 + 0.5) / 3  # normal recall 1/2
    malignancy = summary["classifier_malignancy_bacc"]
    assert malignancy["alone"]["per_fold"] == pytest.approx([(100 + one_wrong) / 2, one_wrong])
    assert malignancy["mirrored"]["per_fold"] == pytest.approx([(100 + one_wrong) / 2] * 2)
    assert malignancy["towers"]["per_fold"] == pytest.approx([100.0, one_wrong])
    assert malignancy["towers"]["gain"]["mean"] == pytest.approx((100 - (100 + one_wrong) / 2) / 2)
    assert malignancy["mirrored"]["gain"]["mean"] == pytest.approx(((100 + one_wrong) / 2 - one_wrong) / 2)
    shared = summary["shared_errors"]
    assert (shared["wrong_in_some"], shared["wrong_in_every"]) == (2, 1) and shared["share"] == 0.5
    assert shared["mistakes"] == {"normal -> benign": 1}


def test_answers_consistency_is_set_beside_that_of_answers_following_the_same_runs_towers():
    gold = [0, 1, 2, 2]
    views = [
        FoldViews(CLASSES, list("abcd"), gold, one_hot([0, 1, 2, 2])),  # right: 100
        FoldViews(CLASSES, list("abcd"), gold, one_hot([2, 1, 2, 0])),  # two lesion decisions wrong
    ]
    answered = {"answer_type_consistency": 90.0, "heldout_answer_type_consistency": 80.0}
    folds = {  # only the second run answered (trained an LLM); the first is a tower alone
        0: compare_fold(views, ["a", "b"], [{"classifier_lesion_bacc": 75.0}, answered]),
        1: compare_fold(views, ["a", "b"], [{}, {**answered, "heldout_answer_type_consistency": 70.0}]),
    }
    following = 100 * (4 + 4 + 2) / 12  # two 良恶性 answers of the wrong kind
    assert folds[0]["alone"][1]["classifier_consistency"] == pytest.approx(following)
    summary = summarize(folds)
    answers = summary["answers"]
    assert answers["runs"] == [1, 1] and answers["classifier_consistency"]["mean"] == pytest.approx(following)
    assert answers["heldout_answer_type_consistency"]["mean"] == pytest.approx(75.0)
    assert summary["classifier_consistency"]["alone"]["mean"] == pytest.approx((100 + following) / 2)
    table = report_markdown({"runs": ["a", "b"], "folds": folds, "summary": summary})
    assert "| answers, held-out wordings | 75.0 [" in table
    assert max(cell_len(line) for line in table.splitlines()) <= 80, table
    towers_only = {0: compare_fold(views, ["a", "b"])}
    assert summarize(towers_only)["answers"] == {}


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


def test_each_tower_alone_reproduces_its_cv_row_and_the_towers_average(tower_runs):
    report = compare_runs(tower_runs)
    fold = report["folds"][0]
    for run, alone in zip(tower_runs, fold["alone"], strict=True):
        cv_row = json.loads((run / "cv.json").read_text(encoding="utf-8"))["folds"][0]["scores"]
        for metric, value in cv_row.items():
            assert alone[metric] == pytest.approx(value, abs=1e-9), metric
    views = [fold_views(run / "fold0" / "recipe") for run in tower_runs]
    assert views[0].images == views[1].images and len(views[0].images) == fold["n_images"]
    averaged = (views[0].probabilities[:, 0] + views[1].probabilities[:, 0]) / 2
    assert fold["towers"] == tower_scores(CLASSES, views[0].gold, averaged)
    assert fold["mirrored"][0] == tower_scores(CLASSES, views[0].gold, views[0].probabilities.mean(dim=1))
    assert 0 <= fold["wrong_in_every"] <= fold["wrong_in_some"] <= fold["n_images"]


def test_cli_writes_table_numbers_and_figure_and_refuses_other_folds(tower_runs, tmp_path, capsys):
    figure, numbers = tmp_path / "errors.png", tmp_path / "errors.json"
    main([*map(str, tower_runs), "--figure", str(figure), "--json", str(numbers)])
    printed = capsys.readouterr().out
    assert "| 多塔平均 / towers |" in printed and "by every tower" in printed
    assert "| consistency of answers following the tower |" in printed and "held-out wordings" not in printed
    assert figure.stat().st_size > 10_000 and json.loads(numbers.read_text(encoding="utf-8"))["folds"]["0"]
    moved = tmp_path / "other-folds"
    shutil.copytree(tower_runs[1], moved)
    report = json.loads((moved / "cv.json").read_text(encoding="utf-8"))
    (moved / "cv.json").write_text(json.dumps({**report, "seed": 1}), encoding="utf-8")
    with pytest.raises(SystemExit) as refused:
        main([str(tower_runs[0]), str(moved)])
    assert refused.value.code == 2
    assert "other-folds/cv.json" in capsys.readouterr().err
    for run in tower_runs:  # smoke runs validate on a sample of the fold: refused
        smoke = tmp_path / f"smoke-{run.name}"
        shutil.copytree(run, smoke)
        report = json.loads((smoke / "cv.json").read_text(encoding="utf-8"))
        (smoke / "cv.json").write_text(json.dumps({**report, "smoke": True}), encoding="utf-8")
    with pytest.raises(SystemExit):
        main([str(tmp_path / f"smoke-{run.name}") for run in tower_runs])
    assert "a --max-steps smoke run" in capsys.readouterr().err
