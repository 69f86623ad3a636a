"""Every converter on the real files in shared/data; counts from SOURCES.md."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from data_zh import ConversionError, convert, load_split, read_llava, write_llava
from data_zh.masks import record_mask
from fusion.registry import UnknownEntryError


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
    images = {
        split: len({r.extra["img_id"] for r in records if r.split == split})
        for split in ("train", "val", "test")
    }
    assert images == {"train": 586, "val": 174, "test": 120}
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
    with (shared_data / "busi" / "labels.csv").open(encoding="utf-8") as handle:
        truth = {row["image_path"]: row["label"] for row in csv.DictReader(handle)}
    assert len(records) == len(truth)
    assert Counter(r.labels.classes[0] for r in records) == Counter(truth.values())
    # the committed split tags every image
    committed = {name: len(keys) for name, keys in load_split("busi").items()}
    assert committed == {"train": 361, "selftrain_pool": 131, "val": 164}
    assert Counter(r.split for r in records) == committed
    zh = {"benign": "良性", "malignant": "恶性", "normal": "正常"}
    for record in records:
        assert record.answer == zh[truth[record.media.images[0]]]
        assert record.media.all_paths()[0].is_file()


def test_busi_records_carry_their_lesion_masks(shared_data):
    records = convert("busi", shared_data / "busi")
    assert all(len(r.extra["masks"]) == 1 for r in records)  # the shared copy: merged, one per image
    for record in records[::40]:  # a few images of each class
        mask = record_mask(record)
        assert mask.shape == (256, 256)
        assert mask.any() == (record.labels.classes[0] != "normal"), record.id
        assert record.extra["masks"][0] == record.media.images[0].replace("images/", "masks/", 1)[:-4] + "_mask.png"


def test_busi_masks_beside_the_image_are_found_and_merged(tmp_path):
    """BUSI's own layout: ``_mask.png`` and ``_mask_1.png`` beside the image, a lesion each."""
    folder = tmp_path / "images" / "benign"
    folder.mkdir(parents=True)
    Image.new("L", (8, 6), 90).save(folder / "benign (4).png")
    Image.new("L", (8, 6), 90).save(folder / "benign (41).png")
    for name, columns in (("benign (4)_mask.png", slice(0, 2)), ("benign (4)_mask_1.png", slice(5, 7))):
        pixels = np.zeros((6, 8), np.uint8)
        pixels[1:3, columns] = 255
        Image.fromarray(pixels).save(folder / name)
    (tmp_path / "labels.csv").write_text(
        "image_path,label\nimages/benign/benign (4).png,benign\nimages/benign/benign (41).png,benign\n",
        encoding="utf-8",
    )
    first, second = convert("busi", tmp_path)
    assert first.extra["masks"] == ["images/benign/benign (4)_mask.png", "images/benign/benign (4)_mask_1.png"]
    assert second.extra["masks"] == [] and record_mask(second) is None  # "benign (41)" is not "(4)"'s
    mask = record_mask(first)
    assert mask.sum() == 8 and mask[1:3, 0:2].all() and mask[1:3, 5:7].all()


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
    with pytest.raises(UnknownEntryError, match="unknown converter 'imagenet'; known: busbra, busi, dicom"):
        convert("imagenet", tmp_path)


def _read_yolo(path):
    classes = dict(
        line.split(" ", 1) for line in (path.parent.parent.parent / "classes.txt").read_text().splitlines()
    )
    return sorted(classes[line.split()[0]] for line in path.read_text().splitlines() if line.strip())


def test_laparoscopy_counts_boxes_and_frame_order(shared_data):
    root = shared_data / "laparoscopy_frames"
    records = convert("laparoscopy", root)
    assert len(records) == 88
    counts = Counter(box.label for r in records for box in r.labels.boxes)
    assert counts == {"Allis": 2, "Bag": 2, "Cautery": 44, "Forceps": 59, "Gallbladder": 65, "Liver": 108}
    assert {r.extra["video"] for r in records} == {"video04"}
    assert Counter(r.split for r in records) == {"train": 53, "val": 21, "gap": 14}
    assert len({r.extra["frame_index"] for r in records}) == 88
    for record in records[:20]:
        label_file = root / "test/labels" / (record.media.images[0].split("/")[-1].rsplit(".", 1)[0] + ".txt")
        assert sorted(b.label for b in record.labels.boxes) == _read_yolo(label_file)
        assert all(0 <= x <= 1 and 0 <= y <= 1 for b in record.labels.boxes for x, y in b.points)


def test_laparoscopy_axis_aligned_boxes_and_bad_lines(shared_data, tmp_path, caplog):
    source = next((shared_data / "laparoscopy_frames/test/images").iterdir())
    (tmp_path / "train/images").mkdir(parents=True)
    (tmp_path / "train/labels").mkdir()
    shutil.copy(source, tmp_path / "train/images/clip_000123.jpg")
    (tmp_path / "classes.txt").write_text("Grasper\nGallbladder\n", encoding="utf-8")
    (tmp_path / "train/labels/clip_000123.txt").write_text(
        "0 0.5 0.5 0.2 0.4\n7 0.1 0.1 0.1 0.1\n1 0.3\n", encoding="utf-8"
    )
    (record,) = convert("laparoscopy", tmp_path, split_map={})
    assert record.extra["frame_index"] == 123
    assert [b.label for b in record.labels.boxes] == ["Grasper"]
    assert record.labels.boxes[0].points[0] == pytest.approx((0.4, 0.3))
    assert record.answer == "器械：抓钳；器官：无"
    assert "clip_000123.txt:2" in caplog.text and "clip_000123.txt:3" in caplog.text


def test_promptcblue_counts(shared_data):
    records = convert("promptcblue", shared_data / "promptcblue_toy_zh")
    assert Counter(r.split for r in records) == {"train": 80, "val": 80, "test": 80}
    per_task = Counter((r.split, r.extra["task_dataset"]) for r in records)
    assert set(per_task.values()) == {5} and len({t for _, t in per_task}) == 16
    assert all(r.media.count == 0 and r.task == "text_instruction" for r in records)


def test_dicom_headers_only(shared_data):
    records = convert("dicom", shared_data / "dicom")
    with (shared_data / "dicom/manifest.csv").open(encoding="utf-8") as handle:
        manifest = {row["file"]: row for row in csv.DictReader(handle)}
    assert len(records) == len(manifest) == 16
    for record in records:
        row = manifest[record.media.dicom[0].path]
        header = record.extra["dicom"]
        assert header["Modality"] == row["modality"]
        assert (header["NumberOfFrames"], header["Rows"], header["Columns"]) == (
            int(row["frames"]),
            int(row["rows"]),
            int(row["cols"]),
        )
        assert header["TransferSyntaxUID"] == row["transfer_syntax_uid"]
        assert record.answer == {"US": "超声", "CT": "CT", "MR": "磁共振"}[row["modality"]]
        assert not any("Patient" in key for key in header)


def test_dicom_folder_skips_unreadable_file(shared_data, tmp_path, caplog):
    shutil.copy(shared_data / "dicom/ct_mr/CT_small.dcm", tmp_path / "a.dcm")
    (tmp_path / "broken.dcm").write_bytes(b"not dicom at all")
    records = convert("dicom", tmp_path, split_map={})
    assert [r.media.dicom[0].path for r in records] == ["a.dcm"]
    assert "broken.dcm: not a readable DICOM file" in caplog.text


def _png_bytes(colour):
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_pathvqa_parquet_layout(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    (tmp_path / "data").mkdir()
    red, blue = _png_bytes("red"), _png_bytes("blue")
    pd.DataFrame(
        {
            "image": [
                {"bytes": red, "path": "a.png"},
                {"bytes": red, "path": "a.png"},
                {"bytes": blue, "path": None},
            ],
            "question": ["Is this tissue necrotic?", "What is present?", "Is there fibrosis?"],
            "answer": ["yes", "neutrophils ", "No"],
        }
    ).to_parquet(tmp_path / "data/train-00000-of-00001.parquet")
    pd.DataFrame({"image": [blue], "question": ["what organ?"], "answer": ["liver"]}).to_parquet(
        tmp_path / "data/validation-00000-of-00001.parquet"
    )
    records = convert("pathvqa", tmp_path, image_dir=tmp_path / "imgs")
    assert [(r.split, r.answer, r.answer_type) for r in records] == [
        ("train", "yes", "closed"),
        ("train", "neutrophils", "open"),
        ("train", "No", "closed"),
        ("val", "liver", "open"),
    ]
    assert len(list((tmp_path / "imgs").iterdir())) == 2
    assert records[0].media.images == records[1].media.images
    assert all(r.media.all_paths()[0].is_file() for r in records)


def test_pathvqa_qa_files_layout(tmp_path):
    import pickle

    (tmp_path / "qas/train").mkdir(parents=True)
    (tmp_path / "qas/test").mkdir(parents=True)
    (tmp_path / "images/train").mkdir(parents=True)
    (tmp_path / "images/train/train_0001.png").write_bytes(_png_bytes("red"))
    items = [{"image": "train_0001", "question": "Is this a gland?", "answer": "yes"}]
    (tmp_path / "qas/train/train_qa.pkl").write_bytes(pickle.dumps(items))
    (tmp_path / "qas/test/test_qa.json").write_text(
        json.dumps([{"image": "test_0001", "question": "What?", "answer": "cells"}])
    )
    records = convert("pathvqa", tmp_path)
    assert [(r.split, r.media.images[0], r.answer_type) for r in records] == [
        ("test", "test_0001.jpg", "open"),
        ("train", "train_0001.png", "closed"),
    ]
    assert records[1].media.all_paths()[0].is_file()
    (tmp_path / "qas/train/train_qa.pkl").write_bytes(pickle.dumps([Counter(a=1)]))
    with pytest.raises(ConversionError, match="refusing to load collections.Counter"):
        convert("pathvqa", tmp_path)


def test_llava_source_folder(tmp_path):
    (tmp_path / "x.png").write_bytes(_png_bytes("red"))
    item = {
        "id": "q1",
        "image": "x.png",
        "conversations": [
            {"from": "human", "value": "<image>\n这是什么？"},
            {"from": "gpt", "value": "乳腺"},
        ],
    }
    (tmp_path / "data.jsonl").write_text(json.dumps(item, ensure_ascii=False) + "\n", encoding="utf-8")
    (record,) = convert("llava", tmp_path, modality="US")
    assert record.modality == "US" and record.answer == "乳腺"
    assert record.media.all_paths()[0] == (tmp_path / "x.png").resolve()


@pytest.mark.parametrize(
    ("source", "folder"),
    [("laparoscopy", "laparoscopy_frames"), ("promptcblue", "promptcblue_toy_zh"), ("dicom", "dicom")],
)
def test_round_trip_other_sources(shared_data, tmp_path, source, folder):
    records = convert(source, shared_data / folder)
    path = tmp_path / "llava.jsonl"
    write_llava(records, path)
    assert read_llava(path) == records
