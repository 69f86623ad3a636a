"""Builders: every answer checked against labels.csv; committed splits are disjoint and reproducible."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pytest

from data_zh import load_split
from data_zh.builders import (
    build_busi_instructions,
    build_busi_vqa,
    build_dicom_instructions,
    build_laparoscopy_instructions,
)
from data_zh.converters.dicom import convert_dicom
from data_zh.converters.laparoscopy import CLASS_ZH, convert_laparoscopy
from data_zh.splits import load_split_payload
from data_zh.splitting import (
    BUSI_RATIOS,
    check_disjoint,
    dicom_split_payload,
    laparoscopy_split_payload,
    make_busi_split_payload,
    stratified_split,
)

ZH = {"benign": "良性", "malignant": "恶性"}


@pytest.fixture(scope="module")
def busi_truth(shared_data):
    with (shared_data / "busi" / "labels.csv").open(encoding="utf-8") as handle:
        return {row["image_path"]: row["label"] for row in csv.DictReader(handle)}


def test_busi_split_is_disjoint_stratified_and_reproducible(shared_data, busi_truth):
    splits = load_split("busi")
    check_disjoint(splits)
    assert sorted(sum(splits.values(), [])) == sorted(busi_truth)  # every labels.csv row, once
    assert {k: len(v) for k, v in splits.items()} == {"train": 361, "selftrain_pool": 131, "val": 164}
    for name, keys in splits.items():  # 55/20/25 of each class, within the groups' slack
        for label, total in Counter(busi_truth.values()).items():
            share = sum(busi_truth[key] == label for key in keys) / total
            assert share == pytest.approx(BUSI_RATIOS[name], abs=0.02), (name, label)
    payload = load_split_payload("busi")
    previous = payload["first_release"]
    assert make_busi_split_payload(shared_data / "busi", seed=payload["seed"], previous=previous) == payload


def test_busi_first_release_keeps_its_split(shared_data, busi_truth, tmp_path):
    """The first 240 images keep the split they were committed with; the old val 60 stay val."""
    payload = load_split_payload("busi")
    first = payload["first_release"]
    assert {k: len(v) for k, v in first.items()} == {"train": 132, "selftrain_pool": 48, "val": 60}
    first_release = list(busi_truth)[:240]  # the folder's first release: the first 240 rows of labels.csv
    assert sorted(sum(first.values(), [])) == sorted(first_release)
    assert Counter(busi_truth[p] for p in first["val"]) == {"benign": 25, "malignant": 20, "normal": 15}
    for name, keys in first.items():
        assert set(keys) <= set(payload["splits"][name]), name
    lines = (shared_data / "busi" / "labels.csv").read_text(encoding="utf-8").splitlines()
    (tmp_path / "labels.csv").write_text("\n".join(lines[: 1 + len(first_release)]) + "\n", encoding="utf-8")
    (tmp_path / "images").symlink_to(shared_data / "busi" / "images")
    assert make_busi_split_payload(tmp_path, seed=payload["seed"])["splits"] == first


def test_busi_near_duplicates_never_straddle_splits():
    payload = load_split_payload("busi")
    split_of = {key: name for name, keys in payload["splits"].items() for key in keys}
    assert len(payload["groups"]) >= 10
    for group in payload["groups"]:
        assert len({split_of[key] for key in group}) == 1, group


def test_busi_near_duplicates_of_first_release_images_join_their_split():
    payload = load_split_payload("busi")
    old = {key: name for name, keys in payload["first_release"].items() for key in keys}
    split_of = {key: name for name, keys in payload["splits"].items() for key in keys}
    joined = [group for group in payload["groups"] if {k in old for k in group} == {True, False}]
    assert len(joined) >= 10  # BUSI's second release holds many frames of scans in the first
    for group in joined:
        assert {split_of[key] for key in group} == {old[key] for key in group if key in old}, group


def test_pinned_keys_keep_their_split_and_pull_their_group():
    labels = {f"k{i}": "a" if i < 60 else "b" for i in range(100)}
    groups = {"k0": "g1", "k1": "g1", "k70": "g2", "k71": "g2"}
    fixed = {"k0": "val", "k5": "val", "k70": "train"}
    splits = stratified_split(labels, {"train": 0.5, "val": 0.5}, seed=3, groups=groups, fixed=fixed)
    assert {"k0", "k1", "k5"} <= set(splits["val"]) and {"k70", "k71"} <= set(splits["train"])
    assert {k: len(v) for k, v in splits.items()} == {"train": 50, "val": 50}
    assert stratified_split(labels, {"train": 0.5, "val": 0.5}, 3, groups, {}) == stratified_split(
        labels, {"train": 0.5, "val": 0.5}, 3, groups
    )
    with pytest.raises(ValueError, match="pinned to several splits"):
        stratified_split(labels, {"train": 0.5, "val": 0.5}, 3, groups, {"k0": "val", "k1": "train"})


def test_grouped_stratified_split_keeps_groups_and_counts():
    labels = {f"k{i}": "a" if i < 60 else "b" for i in range(100)}
    groups = {"k0": "g1", "k1": "g1", "k2": "g1", "k70": "g2", "k71": "g2"}
    splits = stratified_split(labels, {"train": 0.5, "val": 0.5}, seed=3, groups=groups)
    check_disjoint(splits)
    assert {k: len(v) for k, v in splits.items()} == {"train": 50, "val": 50}
    for group in ({"k0", "k1", "k2"}, {"k70", "k71"}):
        assert any(group <= set(keys) for keys in splits.values())
    assert sum(labels[k] == "a" for k in splits["val"]) == 30
    with pytest.raises(ValueError, match="'k0' is in both"):
        check_disjoint({"train": ["k0"], "val": ["k0"]})


def _check_answer(record, truth):
    label = truth[record.media.images[0]]
    kind = record.extra["question_type"]
    if kind == "site":
        assert record.answer == "乳腺"
    elif kind == "lesion":
        assert record.answer == ("否" if label == "normal" else "是")
    elif kind == "malignancy":
        assert record.answer == ("未见明确病灶" if label == "normal" else ZH[label])
    elif kind == "impression":
        assert ("未见" in record.answer) == (label == "normal")
        if label != "normal":
            assert ZH[label] in record.answer
    elif kind == "question_generation":
        answer = record.answer.split("答案：")[1].rstrip("。")
        assert answer in {"乳腺", "否" if label == "normal" else "是", ZH.get(label)}
    else:
        raise AssertionError(kind)


def test_busi_instructions_follow_labels_csv(shared_data, busi_truth):
    records = build_busi_instructions(shared_data / "busi", split="train")
    train = set(load_split("busi")["train"])
    assert {r.media.images[0] for r in records} == train
    kinds = Counter(r.extra["question_type"] for r in records)
    kinds_asked = ("site", "lesion", "malignancy", "impression", "question_generation")
    assert kinds == dict.fromkeys(kinds_asked, len(train))
    for record in records:
        _check_answer(record, busi_truth)
    assert len({r.id for r in records}) == len(records)
    assert len({r.question for r in records if r.extra["question_type"] == "lesion"}) >= 3


def test_busi_vqa_is_closed_on_val_only(shared_data, busi_truth):
    records = build_busi_vqa(shared_data / "busi")
    assert {r.media.images[0] for r in records} == set(load_split("busi")["val"])
    assert all(r.answer_type == "closed" and r.split == "val" for r in records)
    for record in records:
        _check_answer(record, busi_truth)
    assert Counter(r.answer for r in records if r.extra["question_type"] == "malignancy") == {
        "良性": 96,
        "恶性": 44,
        "未见明确病灶": 24,
    }
    for record in records:  # each image's mask file, for the pointing game
        image = record.media.images[0]
        assert record.extra["masks"] == [image.replace("images/", "masks/", 1).removesuffix(".png") + "_mask.png"]
    with pytest.raises(ValueError, match="unknown busi split 'dev'"):
        build_busi_vqa(shared_data / "busi", split="dev")


def test_laparoscopy_split_blocks_respect_the_gap(shared_data):
    payload = load_split_payload("laparoscopy")
    splits, index, gap = payload["splits"], payload["frame_index"], payload["gap"]
    check_disjoint(splits)
    assert gap >= 1 and set(splits) == {"train", "val"}
    for name, keys in splits.items():
        for other, other_keys in splits.items():
            if other != name:
                nearest = min(abs(index[a] - index[b]) for a in keys for b in other_keys)
                assert nearest > gap, (name, other, nearest)
    frames = {
        r.media.images[0]: r.extra["frame_index"]
        for r in convert_laparoscopy(shared_data / "laparoscopy_frames", split_map={})
    }
    assert index == frames
    regenerated = laparoscopy_split_payload(frames, payload["block_size"], gap, payload["seed"])
    assert regenerated["splits"] == splits and regenerated["dropped"] == payload["dropped"]
    assert len(payload["dropped"]) + sum(map(len, splits.values())) == 88


def test_dicom_split_by_file_covers_every_modality(shared_data):
    splits = load_split("dicom")
    check_disjoint(splits)
    records = convert_dicom(shared_data / "dicom", split_map={})
    modality = {r.media.dicom[0].path: r.modality for r in records}
    assert sorted(sum(splits.values(), [])) == sorted(modality)
    assert {modality[p] for p in splits["val"]} == {"US", "MR"}
    study = {r.media.dicom[0].path: r.extra["dicom"]["StudyKey"] for r in records}
    assert dicom_split_payload(modality, study, load_split_payload("dicom")["seed"])["splits"] == splits
    split_of = {path: name for name, paths in splits.items() for path in paths}
    for key in set(study.values()):
        assert len({split_of[p] for p in study if study[p] == key}) == 1


def test_laparoscopy_instructions_follow_box_files(shared_data):
    root = shared_data / "laparoscopy_frames"
    classes = dict(line.split(" ", 1) for line in (root / "classes.txt").read_text().splitlines())
    zh = {name: CLASS_ZH[name][0] for name in classes.values()}
    records = build_laparoscopy_instructions(root, split="val")
    assert {r.media.images[0] for r in records} == set(load_split("laparoscopy")["val"])
    for record in records:
        label_file = root / "test/labels" / (Path(record.media.images[0]).stem + ".txt")
        present = {classes[line.split()[0]] for line in label_file.read_text().splitlines() if line.strip()}
        kind = record.extra["question_type"]
        if kind == "presence":
            assert record.answer == ("是" if record.extra["target_class"] in present else "否")
        elif kind in ("instruments", "organs"):
            wanted = {n for n in present if (CLASS_ZH[n][1] == "organ") == (kind == "organs")}
            assert set(record.answer.split("、")) == ({zh[n] for n in wanted} or {"无"})
        else:
            assert kind == "question_generation" and record.task == "question_generation"


def test_dicom_instructions_follow_modality_tag(shared_data):
    import pydicom

    records = build_dicom_instructions(shared_data / "dicom", split="val", all_frames=True)
    assert Counter(r.extra["question_type"] for r in records)["modality"] == 1 + 1 + 1 + 1 + 30
    for record in records:
        ref = record.media.dicom[0]
        tag = pydicom.dcmread(shared_data / "dicom" / ref.path, stop_before_pixels=True).Modality
        expected = (
            {"US": "超声", "CT": "CT", "MR": "磁共振"}[tag]
            if record.extra["question_type"] == "modality"
            else ("是" if tag == "US" else "否")
        )
        assert record.answer == expected


def test_busi_phrasings_and_user_folders(shared_data, tmp_path, busi_truth):
    records = build_busi_instructions(shared_data / "busi", split="val", phrasings=3)
    per_image = Counter((r.media.images[0], r.extra["question_type"]) for r in records)
    assert set(per_image.values()) == {3}
    for image in load_split("busi")["val"][:10]:
        questions = [
            r.question for r in records if r.media.images[0] == image and r.extra["question_type"] == "lesion"
        ]
        assert len(set(questions)) == 3
    for record in records:
        _check_answer(record, busi_truth)
    assert len({r.id for r in records}) == len(records)
    (tmp_path / "images/x").mkdir(parents=True)
    shutil.copy(shared_data / "busi/images/malignant/malignant (10).png", tmp_path / "images/x/m 1.png")
    (tmp_path / "labels.csv").write_text("image_path,label\nimages/x/m 1.png,malignant\n", encoding="utf-8")
    own = build_busi_vqa(tmp_path, split="all")
    assert [(r.extra["question_type"], r.answer, r.split) for r in own] == [
        ("site", "乳腺", None),
        ("lesion", "是", None),
        ("malignancy", "恶性", None),
    ]
    assert len(build_busi_instructions(tmp_path, split="all")) == 5
    with pytest.raises(ValueError, match="phrasings must be >= 1"):
        build_busi_instructions(tmp_path, split="all", phrasings=0)
