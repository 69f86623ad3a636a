"""Builders: every answer checked against labels.csv; committed splits are disjoint and reproducible."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from data_zh import load_split
from data_zh.builders import build_busi_instructions, build_busi_vqa
from data_zh.converters.busi import read_busi_labels
from data_zh.splits import load_split_payload
from data_zh.splitting import busi_split_payload, check_disjoint

ZH = {"benign": "良性", "malignant": "恶性"}


@pytest.fixture(scope="module")
def busi_truth(shared_data):
    with (shared_data / "busi" / "labels.csv").open(encoding="utf-8") as handle:
        return {row["image_path"]: row["label"] for row in csv.DictReader(handle)}


def test_busi_split_is_disjoint_stratified_and_reproducible(shared_data, busi_truth):
    splits = load_split("busi")
    check_disjoint(splits)
    assert {k: len(v) for k, v in splits.items()} == {"train": 132, "selftrain_pool": 48, "val": 60}
    assert sorted(sum(splits.values(), [])) == sorted(busi_truth)
    assert Counter(busi_truth[p] for p in splits["val"]) == {"benign": 25, "malignant": 20, "normal": 15}
    rows = read_busi_labels(shared_data / "busi")
    regenerated = busi_split_payload(
        {p: r["label"] for p, r in rows.items()}, seed=load_split_payload("busi")["seed"]
    )
    assert regenerated["splits"] == splits


def _check_answer(record, truth):
    label = truth[record.media.images[0]]
    kind = record.extra["question_type"]
    if kind == "site":
        assert record.answer == "乳腺"
    elif kind == "lesion":
        assert record.answer == ("否" if label == "normal" else "是")
    elif kind == "malignancy":
        assert label != "normal" and record.answer == ZH[label]
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
    lesions = sum(busi_truth[p] != "normal" for p in train)
    assert kinds == {
        "site": 132,
        "lesion": 132,
        "malignancy": lesions,
        "impression": 132,
        "question_generation": 132,
    }
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
        "良性": 25,
        "恶性": 20,
    }
    with pytest.raises(ValueError, match="unknown busi split 'dev'"):
        build_busi_vqa(shared_data / "busi", split="dev")
