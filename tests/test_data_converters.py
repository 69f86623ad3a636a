"""Every converter on the real files in shared/data; counts from SOURCES.md."""

from __future__ import annotations

import csv
import shutil
from collections import Counter

import pytest

from data_zh import ConversionError, convert, read_llava, write_llava


def test_slake_counts_and_fields(shared_data):
    records = convert("slake", shared_data / "slake")
    counts = Counter((r.split, r.language) for r in records)
    assert counts == {
        ("train", "en"): 4919,
        ("train", "zh"): 4916,
        ("val", "en"): 1053,
        ("val", "zh"): 1046,
        ("test", "zh"): 685,
        ("test", "en"): 690,
    }
    assert len({r.id for r in records}) == len(records)
    assert len({r.extra["img_id"] for r in records if r.split == "train"}) == 586
    zh = next(r for r in records if r.language == "zh" and r.answer_type == "closed")
    assert {"content_type", "location", "base_type", "qid", "q_lang", "triple"} <= set(zh.extra)
    assert {r.modality for r in records} == {"CT", "MR", "X-ray"}


def test_vqa_rad_counts_and_messy_answer_types(shared_data):
    records = convert("vqa_rad", shared_data / "vqa_rad")
    assert Counter(r.split for r in records) == {"train": 3064, "test": 302}
    assert len({r.extra["image_name"] for r in records if r.split == "train"}) == 314
    assert len({r.extra["image_name"] for r in records if r.split == "test"}) == 136
    assert {r.answer_type for r in records} == {"closed", "open"}
    assert all(isinstance(r.answer, str) for r in records)
    assert {r.extra["location"] for r in records} == {"HEAD", "CHEST", "ABD"}


def test_busi_counts_labels_and_split_tags(shared_data):
    records = convert("busi", shared_data / "busi")
    assert Counter(r.labels.classes[0] for r in records) == {"benign": 100, "malignant": 80, "normal": 60}
    assert Counter(r.split for r in records) == {"train": 132, "selftrain_pool": 48, "val": 60}
    with (shared_data / "busi" / "labels.csv").open(encoding="utf-8") as handle:
        truth = {row["image_path"]: row["label"] for row in csv.DictReader(handle)}
    zh = {"benign": "良性", "malignant": "恶性", "normal": "正常"}
    for record in records:
        assert record.answer == zh[truth[record.media.images[0]]]
        assert record.media.all_paths()[0].is_file()


def test_any_busi_layout_folder_converts_and_bad_rows_are_skipped(shared_data, tmp_path, caplog):
    source = shared_data / "busi"
    (tmp_path / "images" / "mine").mkdir(parents=True)
    shutil.copy(source / "images/benign/benign (26).png", tmp_path / "images/mine/病例 (1).png")
    (tmp_path / "labels.csv").write_text(
        "image_path,label\nimages/mine/病例 (1).png,Malignant\nimages/mine/gone.png,benign\nimages/mine/x.png,cyst\n",
        encoding="utf-8",
    )
    records = convert("busi", tmp_path)
    assert [(r.media.images[0], r.answer, r.split) for r in records] == [
        ("images/mine/病例 (1).png", "恶性", None)
    ]
    assert "gone.png not found" in caplog.text and "'cyst'" in caplog.text
    with pytest.raises(ConversionError, match="labels.csv not found"):
        convert("busi", tmp_path / "images")


@pytest.mark.parametrize("source", ["slake", "vqa_rad", "busi"])
def test_round_trip_through_llava_jsonl(shared_data, tmp_path, source):
    folder = {"slake": "slake", "vqa_rad": "vqa_rad", "busi": "busi"}[source]
    records = convert(source, shared_data / folder)[:300]
    path = tmp_path / "llava.jsonl"
    write_llava(records, path)
    assert read_llava(path) == records
    write_llava(records, path, include_meta=False)
    plain = read_llava(path)
    assert [(r.id, r.media.images, r.conversations) for r in plain] == [
        (r.id, r.media.images, r.conversations) for r in records
    ]


def test_unknown_source_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown source 'imagenet'"):
        convert("imagenet", tmp_path)
