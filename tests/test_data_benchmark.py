"""The multi-image report benchmark: seeded, val-only, ground truth that matches the pictures."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from data_zh import load_split, read_records
from data_zh.builders.report_benchmark import ROLES, ReportBenchmarkConfig, build_report_benchmark


@pytest.fixture(scope="module")
def benchmark(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    records = build_report_benchmark(
        shared_data / "busi",
        out,
        laparoscopy_root=shared_data / "laparoscopy_frames",
        dicom_root=shared_data / "dicom",
        n_reports=6,
        seed=7,
    )
    return out, records


def _pixels(path, size=None):
    image = Image.open(path).convert("L")
    return np.asarray(image.resize(size) if size else image, dtype=np.float32)


def test_roles_and_answers(benchmark, shared_data):
    out, records = benchmark
    with (shared_data / "busi/labels.csv").open(encoding="utf-8") as handle:
        labels = {row["image_path"]: row["label"] for row in csv.DictReader(handle)}
    val = set(load_split("busi")["val"])
    lap_val = {p.split("/")[-1] for p in load_split("laparoscopy")["val"]}
    assert len(records) == 6 and len({r.extra["source_image"] for r in records}) == 6
    for record in records:
        roles = record.labels.image_roles
        assert sorted(roles) == sorted(
            ["relevant", "duplicate", "duplicate", "other_class", "blank", "laparoscopy", "other_modality"]
        )
        assert set(roles) <= set(ROLES)
        assert record.extra["source_image"] in val
        assert record.labels.classes == [labels[record.extra["source_image"]]]
        relevant = roles.index("relevant")
        assert record.extra["relevant"] == [relevant]
        assert f"相关图像：第{relevant + 1}张" in record.answer
        for index in record.extra["duplicates"]:
            assert roles[index] == "duplicate" and f"第{index + 1}张" in record.answer.split("重复图像：")[1]
        paths = record.media.all_paths()
        truth = _pixels(shared_data / "busi" / record.extra["source_image"])
        assert np.array_equal(_pixels(paths[relevant]), truth)
        for index, role in enumerate(roles):
            detail = record.extra["image_details"][index]
            if role == "duplicate":
                source = Image.open(shared_data / "busi" / record.extra["source_image"])
                if detail["duplicate_kind"] == "cropped":
                    source = source.crop(detail["crop_box"])
                expected = np.asarray(source.convert("L"), dtype=np.float32)
                copy = _pixels(paths[index], expected.shape[::-1])
                assert np.abs(copy - expected).mean() < 8, detail
                if detail["duplicate_kind"] == "recompressed":
                    assert paths[index].suffix == ".jpg" and not np.array_equal(copy, expected)
                else:
                    assert Image.open(paths[index]).size != Image.open(paths[relevant]).size
            elif role == "other_class":
                assert (
                    detail["source_image"] in val
                    and labels[detail["source_image"]] != record.labels.classes[0]
                )
                assert np.array_equal(
                    _pixels(paths[index]), _pixels(shared_data / "busi" / detail["source_image"])
                )
            elif role == "blank":
                assert _pixels(paths[index]).std() < 15
            elif role == "laparoscopy":
                assert detail["source_image"] in lap_val
            elif role == "other_modality":
                assert detail["source_image"].split("#")[0] in {
                    "CT_small.dcm",
                    "MR_small.dcm",
                    "emri_small.dcm",
                }
    assert read_records(out / "benchmark.jsonl") == records


def test_same_seed_same_benchmark(benchmark, shared_data, tmp_path):
    out, records = benchmark
    again = build_report_benchmark(
        shared_data / "busi",
        tmp_path,
        laparoscopy_root=shared_data / "laparoscopy_frames",
        dicom_root=shared_data / "dicom",
        n_reports=6,
        seed=7,
    )
    assert [r.derive(media=r.media.model_copy(update={"root": None})) for r in again] == [
        r.derive(media=r.media.model_copy(update={"root": None})) for r in records
    ]
    for a, b in zip(again, records, strict=True):
        assert [p.read_bytes() for p in a.media.all_paths()] == [p.read_bytes() for p in b.media.all_paths()]
    other = build_report_benchmark(shared_data / "busi", tmp_path / "s8", n_reports=6, seed=8)
    assert [r.extra["source_image"] for r in other] != [r.extra["source_image"] for r in records]


def test_distractor_counts_are_configurable_and_sources_optional(shared_data, tmp_path):
    config = ReportBenchmarkConfig(duplicates=0, other_class=2, blank=0, laparoscopy=3, other_modality=0)
    records = build_report_benchmark(shared_data / "busi", tmp_path, n_reports=2, seed=1, config=config)
    for record in records:
        assert sorted(record.labels.image_roles) == ["other_class", "other_class", "relevant"]
        assert record.answer.endswith("重复图像：无。")
    with pytest.raises(ValueError, match="unknown busi split 'test'"):
        build_report_benchmark(shared_data / "busi", tmp_path, split="test")


@pytest.mark.parametrize("split", ["train", "val"])
def test_other_modality_distractors_follow_the_committed_dicom_split(shared_data, tmp_path, split):
    config = ReportBenchmarkConfig(duplicates=0, other_class=0, blank=0, laparoscopy=0, other_modality=3)
    records = build_report_benchmark(
        shared_data / "busi",
        tmp_path,
        split=split,
        dicom_root=shared_data / "dicom",
        n_reports=4,
        config=config,
    )
    allowed = {key.rsplit("/", 1)[-1] for key in load_split("dicom")[split]}
    others = {key.rsplit("/", 1)[-1] for other in load_split("dicom").values() for key in other} - allowed
    sources = [
        detail["source_image"].split("#")[0]
        for record in records
        for role, detail in zip(record.labels.image_roles, record.extra["image_details"], strict=True)
        if role == "other_modality"
    ]
    assert sources, "no CT/MR distractor was drawn"
    assert set(sources) <= allowed, (
        f"{split} benchmark drew CT/MR from another split: {set(sources) & others}"
    )


def test_each_report_carries_the_licences_of_what_it_contains(benchmark, shared_data, tmp_path):
    """Laparoscopy distractors make a report non-commercial; reports without them may train shippable
    weights (the student that ships is distilled on such reports)."""
    from data_zh.licences import is_non_commercial

    _, with_frames = benchmark
    assert all("laparoscopy" in record.labels.image_roles for record in with_frames)
    assert all(is_non_commercial(record.licence) for record in with_frames)
    without = build_report_benchmark(
        shared_data / "busi", tmp_path, split="train", dicom_root=shared_data / "dicom", n_reports=3
    )
    assert not any(is_non_commercial(record.licence) for record in without)
    assert all("DICOM frames" in record.licence for record in without)


def _dicom(tmp_path, photometric, **tags):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel = "CT", 4, 64, 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (4, 1)).tobytes()
    path = tmp_path / f"{photometric}-{len(tags)}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_distractors_follow_rescale_window_and_photometric(tmp_path):
    from data_zh.builders.report_benchmark import dicom_frame_image

    stored = np.arange(0, 4096, 64, dtype=np.float64)
    plain = np.asarray(dicom_frame_image(_dicom(tmp_path, "MONOCHROME2"), 0))[0, :, 0].astype(int)
    low, high = np.percentile(np.tile(stored, (4, 1)), (1, 99))  # over the whole frame
    assert np.array_equal(plain, np.clip(np.rint((stored - low) / (high - low) * 255), 0, 255))
    inverted = np.asarray(dicom_frame_image(_dicom(tmp_path, "MONOCHROME1"), 0))[0, :, 0].astype(int)
    assert np.array_equal(inverted, 255 - plain)
    # HU = stored - 1024; a window of 0 +/- 500 HU: black up to -500 HU, white from +500 HU
    windowed = _dicom(tmp_path, "MONOCHROME2", RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=0, WindowWidth=1000)
    grey = np.asarray(dicom_frame_image(windowed, 0))[0, :, 0]
    hu = stored - 1024
    assert (grey[hu <= -500] == 0).all() and (grey[hu >= 500] == 255).all()
    assert np.all(np.diff(grey[(hu > -500) & (hu < 500)].astype(int)) > 0)
