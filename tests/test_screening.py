"""screening: weights, selection, duplicate groups, blank frames, order invariance, save/load, the CLI.

Real BUSI images from ../shared/data and a tiny random-init fusion backbone (the registered
``tiny-cnn`` encoder): what is tested is the screener's bookkeeping, which must hold for any
backbone and any student, trained or not.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import screening
from data_zh.builders.report_benchmark import DUPLICATE_KINDS, low_texture_frame, near_duplicate
from fusion import FusionConfig, VisionFusion
from screening import (
    BackboneMismatchError,
    LabelledReport,
    LabelTrainingConfig,
    ReportScreener,
    ScreenerConfig,
    SelectionConfig,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
REPORT = "乳腺内见局灶性病灶，倾向良性。"
BUSI_PICKS = (
    "benign/benign (100).png",
    "benign/benign (102).png",
    "malignant/malignant (10).png",
    "normal/normal (10).png",
)


def _tiny_fusion(seed: int = 0) -> VisionFusion:
    torch.manual_seed(seed)
    config = FusionConfig(encoders=["tiny-cnn"], hidden_size=16, grid=(2, 2))
    return VisionFusion(config, load_pretrained=False).eval()


@pytest.fixture(scope="module")
def busi_images(shared_data: Path) -> list[Image.Image]:
    folder = shared_data / "busi" / "images"
    paths = [folder / name for name in BUSI_PICKS]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        pytest.skip(f"BUSI images not found: {missing[0]}")
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


@pytest.fixture(scope="module")
def fusion() -> VisionFusion:
    return _tiny_fusion()


@pytest.fixture(scope="module")
def student(fusion: VisionFusion) -> screening.ScreeningStudent:
    torch.manual_seed(1)
    return screening.new_student(fusion, embed_dim=32, text_embed_dim=16, buckets=512).eval()


@pytest.fixture(scope="module")
def screener(fusion, student) -> ReportScreener:
    return ReportScreener(fusion, student)


@pytest.fixture(scope="module")
def blank() -> Image.Image:
    return low_texture_frame((200, 160), random.Random(3))


def _mixed_report(busi_images: list[Image.Image], blank: Image.Image) -> list[Image.Image]:
    """Four different images, a near-duplicate (re-compressed), an exact copy and a blank frame."""
    recompressed, _, _ = near_duplicate(busi_images[0], "recompressed", random.Random(0))
    return [*busi_images, recompressed, busi_images[2].copy(), blank]


def test_weights_are_a_softmax_over_the_report(screener, busi_images, blank, fusion, student) -> None:
    images = _mixed_report(busi_images, blank)
    result = screener.screen(REPORT, images)
    weights = torch.tensor([v.weight for v in result.images], dtype=torch.float64)
    assert abs(weights.sum().item() - 1.0) <= 10 * torch.finfo(torch.float64).eps * len(images)
    scores = torch.tensor([v.score for v in result.images], dtype=torch.float64)
    torch.testing.assert_close(weights, torch.softmax(scores, dim=0))
    hot = ReportScreener(fusion, student, ScreenerConfig(temperature=0.25)).screen(REPORT, images)
    hot_weights = torch.tensor([v.weight for v in hot.images], dtype=torch.float64)
    torch.testing.assert_close(hot_weights, torch.softmax(scores / 0.25, dim=0))
    assert hot_weights.max() > weights.max(), "a lower temperature must sharpen the weights"


def test_one_image_report_keeps_its_image(screener, busi_images, blank) -> None:
    for image in (busi_images[0], blank):
        (verdict,) = screener.screen(REPORT, [image]).images
        assert verdict.keep and verdict.reason is None and verdict.weight == pytest.approx(1.0)


def test_exact_and_near_duplicates_share_a_group_and_one_is_kept(screener, busi_images) -> None:
    original = busi_images[1]
    rng = random.Random(7)
    copies = [near_duplicate(original, kind, rng)[0] for kind in DUPLICATE_KINDS]
    images = [original, busi_images[0], np.asarray(original), *copies, busi_images[3]]
    result = screener.screen(REPORT, images)
    family = [0, 2, 3, 4, 5]
    groups = {result.images[i].group for i in family}
    assert len(groups) == 1, f"duplicates of one image fell into groups {groups}"
    assert result.images[1].group not in groups and result.images[6].group not in groups
    assert result.images[1].group != result.images[6].group
    keepers = [
        i for i in family if result.images[i].reason is None or result.images[i].reason == "low_weight"
    ]
    assert len(keepers) == 1, [result.images[i].reason for i in family]
    for i in family:
        if i != keepers[0]:
            assert result.images[i].reason == f"duplicate_of:{keepers[0]}"
            assert not result.images[i].keep


def test_different_busi_images_are_not_duplicates(busi_images) -> None:
    groups = screening.duplicate_groups(busi_images)
    assert groups == [[0], [1], [2], [3]]


def test_blank_frames_are_flagged_and_ultrasound_is_not(screener, busi_images) -> None:
    frames = [low_texture_frame((180, 140), random.Random(seed)) for seed in range(12)]
    flagged = [screening.is_uninformative(frame) for frame in frames]
    assert all(flagged), [
        screening.texture_stats(f) for f, hit in zip(frames, flagged, strict=True) if not hit
    ]
    assert not any(screening.is_uninformative(image) for image in busi_images)
    result = screener.screen(REPORT, [*busi_images[:2], frames[0]])
    assert result.images[2].reason == "uninformative" and not result.images[2].keep


def test_selection_rules() -> None:
    weights = [0.5, 0.3, 0.15, 0.05]
    everyone = [0, 1, 2, 3]
    assert screening.select(weights, everyone, SelectionConfig(beta=1.0)) == {0, 1}
    assert screening.select(weights, everyone, SelectionConfig(beta=0.5)) == {0, 1, 2}
    assert screening.select(weights, everyone, SelectionConfig(rule="mass", mass=0.8)) == {0, 1}
    assert screening.select(weights, everyone, SelectionConfig(rule="mass", mass=0.81)) == {0, 1, 2}
    # Mass is a share of the candidates' total (0.5 here), not of the report's.
    assert screening.select(weights, [1, 2, 3], SelectionConfig(rule="mass", mass=0.6)) == {1}
    assert screening.select(weights, [1, 2, 3], SelectionConfig(rule="mass", mass=0.61)) == {1, 2}


def test_selection_never_drops_every_image(fusion, student, busi_images, blank) -> None:
    assert screening.select([0.25] * 4, [0, 1, 2, 3], SelectionConfig(beta=2.0)) == {0}
    assert screening.select([0.4, 0.6], [], SelectionConfig()) == {1}
    strict = ReportScreener(fusion, student, ScreenerConfig(selection=SelectionConfig(beta=50.0)))
    for images in (busi_images, [blank, blank.copy(), low_texture_frame((64, 64), random.Random(1))]):
        result = strict.screen(REPORT, images)
        assert len(result.kept) == 1, [v.reason for v in result.images]


def _canonical(result, order: list[int]) -> list[tuple]:
    """Results of a permuted run, put back in original order, with kept indices mapped back."""
    back = {new: old for new, old in enumerate(order)}
    rows = [None] * len(order)
    for verdict in result.images:
        reason = verdict.reason
        if reason and reason.startswith("duplicate_of:"):
            reason = f"duplicate_of:{back[int(reason.split(':')[1])]}"
        rows[back[verdict.index]] = (verdict.score, verdict.weight, verdict.keep, verdict.group, reason)
    return rows


def test_permuting_images_permutes_results_and_nothing_else(screener, busi_images, blank) -> None:
    images = _mixed_report(busi_images, blank)
    exact_pair = {2, 5}
    baseline = _canonical(screener.screen(REPORT, images), list(range(len(images))))
    for seed in range(3):
        order = list(range(len(images)))
        random.Random(seed).shuffle(order)
        permuted = _canonical(screener.screen(REPORT, [images[i] for i in order]), order)
        torch.testing.assert_close(
            torch.tensor([row[0] for row in permuted]), torch.tensor([row[0] for row in baseline])
        )
        torch.testing.assert_close(
            torch.tensor([row[1] for row in permuted], dtype=torch.float64),
            torch.tensor([row[1] for row in baseline], dtype=torch.float64),
            rtol=1e-5,
            atol=1e-7,
        )
        for index, (now, before) in enumerate(zip(permuted, baseline, strict=True)):
            if index not in exact_pair:
                assert now[2:] == before[2:], f"image {index}, order {order}: {now[2:]} != {before[2:]}"
        # Exact copies may swap which one is kept, but nothing else about them may change.
        assert sorted(permuted[i][2] for i in exact_pair) == sorted(baseline[i][2] for i in exact_pair)
        assert {permuted[i][3] for i in exact_pair} == {baseline[i][3] for i in exact_pair}


def test_student_save_load_round_trip_and_backbone_check(tmp_path, fusion, student, busi_images) -> None:
    screening.save_student(student, tmp_path / "student")
    loaded = screening.load_student(tmp_path / "student")
    features = screening.pooled_features(fusion, busi_images)
    torch.testing.assert_close(
        loaded.scores(features, REPORT), student.scores(features, REPORT), rtol=0, atol=0
    )
    with pytest.raises(BackboneMismatchError, match="trained on backbone"):
        ReportScreener(_tiny_fusion(seed=5), loaded)
    with pytest.raises(FileNotFoundError, match="not a screening student folder"):
        screening.load_student(tmp_path)


def test_array_inputs_follow_the_pixel_policy() -> None:
    """The screener reads arrays as every other part does (tests/test_pixels.py holds the rule):
    wide integers and floats outside [0, 1] are stretched, not refused; errors name the image."""
    grey = np.full((20, 30), 7, dtype=np.uint8)
    assert screening.as_rgb_image(grey).size == (30, 20)
    assert np.asarray(screening.as_rgb_image(np.full((4, 4, 3), 0.5))).max() == 128
    wide = np.array([[100, 4195]], dtype=np.int16)
    assert np.asarray(screening.as_rgb_image(wide, index=1))[0, :, 0].tolist() == [0, 255]
    with pytest.raises(ValueError, match=r"^image 3: array holds NaN"):
        screening.as_rgb_image(np.full((4, 4), np.nan), index=3)


def test_losses() -> None:
    scores = torch.tensor([2.0, -1.0, 0.5])
    assert screening.distillation_loss(scores, scores.clone(), temperature=2.0).item() == pytest.approx(
        0, abs=1e-7
    )
    assert screening.distillation_loss(scores, scores.flip(0), temperature=2.0).item() > 0.1
    relevant = torch.tensor([True, False, False])
    assert screening.relevance_loss(scores, relevant) < screening.relevance_loss(scores.flip(0), relevant)
    with pytest.raises(ValueError, match="at least one relevant"):
        screening.relevance_loss(scores, torch.zeros(3, dtype=torch.bool))


def test_labels_only_training_lowers_the_loss_and_ranks_the_described_image(
    fusion, busi_images, blank
) -> None:
    rng = random.Random(0)
    reports = []
    for index, text in (
        (0, "乳腺内见局灶性病灶，倾向良性。"),
        (2, "乳腺可见病灶，考虑恶性可能。"),
        (3, "乳腺未见明显异常回声。"),
    ):
        copy = near_duplicate(busi_images[index], "resized", rng)[0]
        others = [image for i, image in enumerate(busi_images) if i not in (index, 1)]
        reports.append(LabelledReport(text, [busi_images[index], copy, *others, blank], frozenset({0, 1})))
    torch.manual_seed(0)
    student = screening.new_student(fusion, embed_dim=32, text_embed_dim=16, buckets=512)
    history = screening.train_on_labels(
        student, fusion, reports, LabelTrainingConfig(epochs=60, learning_rate=1e-2, reports_per_step=3)
    )
    assert history[-1] < 0.5 * history[0], history[::10]
    trained = ReportScreener(fusion, student)
    for report in reports:
        result = trained.screen(report.report, report.images)
        best = max(result.images, key=lambda v: v.score).index
        assert best in report.relevant, (report.report, [round(v.score, 2) for v in result.images])


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "ultra", "--quiet", "screen", *args]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_cli_json_matches_the_python_api_and_writes_a_sheet(
    tmp_path, fusion, student, screener, busi_images, blank
) -> None:
    folder = tmp_path / "student"
    screening.save_student(student, folder, bundle=fusion)
    images = _mixed_report(busi_images, blank)
    names = []
    for index, image in enumerate(images):
        names.append(f"img{index}.png")
        image.save(tmp_path / names[-1])
    reports = tmp_path / "reports.jsonl"
    rows = [
        {"report": REPORT, "images": names},
        {"report": "乳腺未见明显异常回声。", "images": [names[3], "missing.png"]},
        {"report": "乳腺未见明显异常回声。", "images": names[3:5]},
    ]
    reports.write_text(
        "\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8"
    )
    sheet = tmp_path / "sheet.png"
    result = _run_cli("--reports", str(reports), "--json", "--student", str(folder), "--sheet", str(sheet))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "report 2" in result.stderr and "missing.png" in result.stderr and "Traceback" not in result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [row["report"] for row in printed] == [rows[0]["report"], rows[2]["report"]]
    for row, got in ((rows[0], printed[0]), (rows[2], printed[1])):
        pictures = []
        for name in row["images"]:
            with Image.open(tmp_path / name) as image:
                pictures.append(image.convert("RGB"))
        expected = screener.screen(row["report"], pictures).as_dict(row["images"])
        assert [i["image"] for i in got["images"]] == row["images"]
        torch.testing.assert_close(
            torch.tensor([i["score"] for i in got["images"]]),
            torch.tensor([i["score"] for i in expected["images"]]),
        )
        for mine, theirs in zip(got["images"], expected["images"], strict=True):
            assert (mine["keep"], mine["group"], mine["reason"]) == (
                theirs["keep"],
                theirs["group"],
                theirs["reason"],
            )
    for number in (1, 3):
        with Image.open(tmp_path / f"sheet-{number:03d}.png") as drawn:
            assert drawn.format == "PNG" and drawn.width > 400


def test_cli_without_a_student_says_what_to_pass(tmp_path, busi_images) -> None:
    from typer.testing import CliRunner

    from ultra.cli.main import app
    from ultra.screen import shipped_student_dir

    if (shipped_student_dir() / "student.json").is_file():
        pytest.skip("a trained student ships with this install")
    busi_images[0].save(tmp_path / "a.png")
    result = CliRunner().invoke(app, ["screen", "--text", REPORT, "--image", str(tmp_path / "a.png")])
    assert result.exit_code == 1, result.output
    assert "--student" in result.output and "Traceback" not in result.output
