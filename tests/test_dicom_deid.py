"""De-identification: PS3.15 basic profile tag by tag, the key file, and no PHI anywhere in OUTDIR."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from ultra.dicom import Deidentifier, DeidKeyError, ProcessOptions, load_or_create_key, run_batch
from ultra.dicom.deid import patient_key
from ultra.dicom.sources import input_id

KEY = b"0123456789abcdef0123456789abcdef"
PATIENT_FOLDER = "ZHANG_San_PID778899"
PHI = {
    "PatientName": "ZHANG^San=张三",
    "PatientID": "PID778899",
    "PatientBirthDate": "19800102",
    "PatientAddress": "Dongcheng Hutong 17",
    "PatientTelephoneNumbers": "13800138000",
    "OtherPatientIDs": "OTHERID4455",
    "InstitutionName": "Xiehe Ultrasound Centre",
    "InstitutionAddress": "Shuaifuyuan Lane 1",
    "ReferringPhysicianName": "WANG^Referrer",
    "PerformingPhysicianName": "LI^Performer",
    "OperatorsName": "CHEN^Sonographer",
    "AccessionNumber": "ACC20240315X",
    "StudyID": "STUDY99X1",
    "StudyDescription": "Liver scan for Zhang San",
    "SeriesDescription": "Series of PID778899",
    "ImageComments": "patient ZHANG called back",
    "StationName": "USROOM3STATION",
    "DeviceSerialNumber": "SERIAL5566",
}
PHI_STRINGS = [
    "ZHANG",
    "张三",
    "PID778899",
    "19800102",
    "Dongcheng",
    "13800138000",
    "OTHERID4455",
    "Xiehe",
    "Shuaifuyuan",
    "Referrer",
    "Performer",
    "Sonographer",
    "ACC20240315X",
    "STUDY99X1",
    "Zhang San",
    "USROOM3STATION",
    "SERIAL5566",
    "PRIVATEPHI",
]
STUDY_DATE = "20240315"


def _phi_dataset(source: Path) -> Dataset:
    ds = pydicom.dcmread(source)
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = STUDY_DATE
    ds.AcquisitionDateTime = STUDY_DATE + "101500"
    block = ds.private_block(0x0011, "HOSPITAL PRIVATE", create=True)
    block.add_new(0x01, "LO", "PRIVATEPHI note")
    ds.add_new(0x60000010, "US", ds.Rows)
    ds.add_new(0x60000011, "US", ds.Columns)
    ds.add_new(0x60003000, "OW", b"\x00" * 8)
    ds.add_new(0x60004000, "LT", "overlay by ZHANG")
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    item.PerformingPhysicianName = "LI^Performer"
    ds.ReferencedSeriesSequence = [Dataset()]
    ds.ReferencedSeriesSequence[0].SeriesInstanceUID = ds.SeriesInstanceUID
    ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence = [item]
    return ds


def test_profile_tag_by_tag(shared_data: Path) -> None:
    original = _phi_dataset(shared_data / "dicom" / "us" / "examples_palette.dcm")
    deid = Deidentifier(KEY)
    out = deid.deidentify(original)
    assert original.PatientID == "PID778899", "the input must be left untouched"
    pseudonym = deid.pseudonym(patient_key(original))
    assert out.PatientName == pseudonym and out.PatientID == pseudonym
    assert pseudonym.startswith("ANON-") and "PID778899" not in pseudonym
    assert out.PatientBirthDate == "" and out.StudyID == ""
    for keyword, value in PHI.items():  # removed, emptied or replaced as Table E.1-1 says
        assert keyword not in out or value not in str(out[keyword].value), keyword
    for keyword in ("PatientAddress", "OtherPatientIDs", "PerformingPhysicianName", "ImageComments"):
        assert keyword not in out, keyword  # X
    assert out.OperatorsName == "ANONYMOUS" and out.AccessionNumber == ""  # X/Z/D: a dummy; Z: empty
    for keyword in ("StationName", "InstitutionName", "DeviceSerialNumber"):  # X/Z/D: a dummy
        assert out[keyword].value == "ANONYMIZED", keyword
    assert not any(elem.tag.is_private for elem in out)
    assert 0x60003000 not in out and 0x60004000 not in out
    offset = dt.timedelta(days=deid.date_offset_days(patient_key(original)))
    assert 1 <= offset.days <= 3650
    shifted = (dt.date(2024, 3, 15) - offset).strftime("%Y%m%d")
    assert out.StudyDate == out.SeriesDate == out.ContentDate == shifted
    assert out.AcquisitionDateTime == shifted + "101500"
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert getattr(out, keyword) == deid.remap_uid(getattr(original, keyword))
        assert getattr(out, keyword) != getattr(original, keyword)
        assert getattr(out, keyword).startswith("2.25.")
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.SOPClassUID == original.SOPClassUID  # a standard UID identifies no one
    nested = out.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert nested.ReferencedSOPInstanceUID == out.SOPInstanceUID
    assert "PerformingPhysicianName" not in nested
    assert out.PatientIdentityRemoved == "YES"
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert {"113100", "113107"} <= codes and "113101" not in codes
    assert "113101" in {
        i.CodeValue for i in deid.deidentify(original, pixels_cleaned=True).DeidentificationMethodCodeSequence
    }


def test_same_key_same_mapping_other_key_other_mapping(shared_data: Path) -> None:
    ds = _phi_dataset(shared_data / "dicom" / "us" / "examples_palette.dcm")
    first, again = Deidentifier(KEY).deidentify(ds), Deidentifier(KEY).deidentify(ds)
    other = Deidentifier(b"another key of enough length!!").deidentify(ds)
    assert first.StudyInstanceUID == again.StudyInstanceUID and first.StudyDate == again.StudyDate
    assert first.StudyInstanceUID != other.StudyInstanceUID
    assert first.PatientID != other.PatientID
    ds2 = pydicom.dcmread(shared_data / "dicom" / "us" / "examples_palette.dcm")
    ds2.PatientID = "ANOTHER-PATIENT"
    assert Deidentifier(KEY).deidentify(ds2).PatientID != first.PatientID


def test_key_created_once_with_mode_600_and_never_inside_outdir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    key = load_or_create_key(None, tmp_path / "out")
    path = tmp_path / "config" / "ultra" / "deid.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_key(None) == key and len(key) >= 32
    with pytest.raises(DeidKeyError, match="outside OUTDIR"):
        load_or_create_key(path, tmp_path / "config")
    with pytest.raises(DeidKeyError, match="does not exist"):
        load_or_create_key(tmp_path / "missing.key")


def _grep_outputs(outdir: Path, extra_text: str) -> list[str]:
    leaks = []
    blobs = {p.relative_to(outdir).as_posix(): p.read_bytes() for p in outdir.rglob("*") if p.is_file()}
    blobs["<log records>"] = extra_text.encode()
    blobs["<file names>"] = "\n".join(blobs).encode()
    for name, blob in blobs.items():
        lowered = blob.lower()
        for secret in PHI_STRINGS:
            if secret.lower().encode() in lowered:
                leaks.append(f"{secret!r} in {name}")
    return leaks


def test_no_phi_anywhere_in_outdir(shared_data: Path, tmp_path: Path, caplog) -> None:
    source = tmp_path / "source"
    patient_dir = source / PATIENT_FOLDER
    patient_dir.mkdir(parents=True)
    us = shared_data / "dicom" / "us"
    first = _phi_dataset(us / "examples_palette.dcm")
    first.save_as(patient_dir / "IMG0001.dcm", enforce_file_format=True)
    second = _phi_dataset(us / "gdcm-US-ALOKA-16.dcm")
    second.StudyInstanceUID = first.StudyInstanceUID  # same study as the first image
    second.save_as(patient_dir / "IMG0002.dcm", enforce_file_format=True)
    first.SOPInstanceUID = pydicom.uid.generate_uid()  # a third instance, cut short below
    first.save_as(tmp_path / "whole.dcm", enforce_file_format=True)
    data = (tmp_path / "whole.dcm").read_bytes()
    (patient_dir / "IMG0003_truncated.dcm").write_bytes(data[: len(data) - 4000])
    key_file = tmp_path / "deid.key"
    key_file.write_text(KEY.decode())
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG, logger="ultra"):
        summary = run_batch(source, out, ProcessOptions(write_dicom=True), workers=1, deid_key=key_file)
    assert (summary.processed, summary.failed, summary.studies) == (2, 1, 1)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in errors] == [input_id(f"{PATIENT_FOLDER}/IMG0003_truncated.dcm", KEY)]
    assert errors[0]["reason"].startswith("truncated")
    leaks = _grep_outputs(out, caplog.text + "\n".join(str(r.args) for r in caplog.records))
    assert not leaks, leaks
    written = sorted((out / "dicom").rglob("*.dcm"))
    assert len(written) == 2
    for path in written:
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES" and ds.BurnedInAnnotation == "NO"
        assert ds.StudyInstanceUID == Deidentifier(KEY).remap_uid(second.StudyInstanceUID)


def test_burned_in_text_masked_outside_regions(shared_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(shared_data / "dicom" / "us" / "examples_palette.dcm", source / "a.dcm")
    out = tmp_path / "out"
    run_batch(source, out, ProcessOptions(crop=False), workers=1, deid_key=_key(tmp_path))
    record = json.loads(next((out / "metadata").rglob("*.json")).read_text())["ultra"]
    assert record["pixels_masked"] and record["crop_source"] == "none"
    pixels = np.asarray(Image.open(out / record["images"][0]))
    x0, y0, x1, y1 = record["crop_box"]
    outside = np.ones(pixels.shape[:2], dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert pixels[outside].max() == 0
    assert pixels[y0:y1, x0:x1].std() > 1.0
    raw = pydicom.dcmread(source / "a.dcm")
    assert (raw.pixel_array[~outside] if raw.pixel_array.ndim == 2 else raw.pixel_array).max() > 0


def _key(tmp_path: Path) -> Path:
    path = tmp_path / "key.txt"
    path.write_text(KEY.decode())
    return path


def test_keep_phi_is_explicit(shared_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    _phi_dataset(shared_data / "dicom" / "us" / "examples_palette.dcm").save_as(source / "a.dcm")
    original = pydicom.dcmread(source / "a.dcm")
    kept, default = tmp_path / "kept", tmp_path / "default"
    run_batch(source, kept, ProcessOptions(keep_phi=True), workers=1)
    run_batch(source, default, ProcessOptions(), workers=1, deid_key=_key(tmp_path))
    (kept_meta,) = (kept / "metadata").rglob("*.json")
    assert kept_meta.stem == original.SOPInstanceUID
    assert "PID778899" in kept_meta.read_text(encoding="utf-8")
    (default_meta,) = (default / "metadata").rglob("*.json")
    assert default_meta.stem == Deidentifier(KEY).remap_uid(original.SOPInstanceUID)
    assert not _grep_outputs(default, "")


def _table_rows() -> list[dict]:
    """Table E.1-1 as shipped in the package, read here independently of ultra.dicom.profile."""
    from importlib import resources

    text = resources.files("ultra.dicom").joinpath("data/confidentiality_profile_attributes.json").read_text()
    return json.loads(text)


_SAMPLE = {
    "DA": "20240315",
    "DT": "20240315101500",
    "TM": "101500",
    "AS": "045Y",
    "DS": "12.5",
    "IS": "77",
    "US": 77,
    "UR": "http://qz.example/patient",
    "OB": b"QZOB",
    "UN": b"QZUN",
}


def test_every_table_attribute_is_handled() -> None:
    """Each of the 621 rows: the element with a recognisable value, de-identified alone, ends as the
    row says (X removed, Z empty, D dummy, U remapped, dates shifted under the option), rightmost
    code of a choice; repeating groups and private tags are removed."""
    from pydicom.datadict import dictionary_VR, keyword_for_tag

    rows = _table_rows()
    assert len(rows) == 621
    deid = Deidentifier(KEY)
    checked = 0
    for row in rows:
        try:
            tag = int(row["id"], 16)
        except ValueError:
            continue
        vr, keyword = dictionary_VR(tag), keyword_for_tag(tag)
        if vr == "SQ":
            item = Dataset()
            item.ReferencedSOPInstanceUID = "1.2.3.4.5.6"
            item.PersonName = "QZ^NESTED"
            value: object = [item]
        elif vr == "UI":
            value = "1.2.3.4.5.6"
        else:
            value = _SAMPLE.get(vr, "QZMARK")
        ds = Dataset()
        ds.PatientID = "PID1"
        ds.add_new(tag, vr, value)
        out = deid.deidentify(ds)
        code = row["basicProfile"].split("/")[-1]
        shifts = row.get("rtnLongModifDatesOpt") == "C"
        where = f"{row['tag']} {row['name']} ({row['basicProfile']})"
        if tag >> 16 == 0x0002:  # file meta: only MediaStorageSOPInstanceUID is in the table
            checked += 1
            continue
        elem = out.get(tag)
        choices = row["basicProfile"].split("/")
        if vr == "SQ" and code in ("Z", "D") and "X" in choices:  # Type 3 in image IODs: removed
            code = "Z" if keyword == "AcquisitionContextSequence" else "X"  # Type 2: kept, empty
        if keyword in ("PatientID", "PatientName"):
            assert elem.value == deid.pseudonym(patient_key(ds)), where
        elif shifts and vr in ("DA", "DT"):
            assert elem.value != value and elem.value[:8].isdigit(), where
        elif shifts and vr == "TM":
            assert elem.value == value, where
        elif code == "X":
            assert elem is None, where
        elif code == "Z":
            assert elem is not None and (elem.is_empty or (vr == "SQ" and len(elem.value) == 0)), where
        elif code == "D" and vr == "UI":  # a dummy UID is a keyed UID, like a replaced one
            assert elem.value == deid.remap_uid("1.2.3.4.5.6"), where
        elif code == "D":
            assert elem is not None and not elem.is_empty and elem.value != value, where
            if vr == "SQ":
                assert len(elem.value) == 1 and len(elem.value[0]) == 0, where
        elif code == "U":
            assert elem.value == deid.remap_uid("1.2.3.4.5.6"), where
        elif code == "U*":
            nested = elem.value[0]
            assert nested.ReferencedSOPInstanceUID == deid.remap_uid("1.2.3.4.5.6"), where
            assert "QZ" not in str(nested), where
        else:
            pytest.fail(f"unknown action {code} for {where}")
        checked += 1
    assert checked == 621 - 4  # 50xx, 60xx (two), private: checked below
    ds = Dataset()
    ds.PatientID = "PID1"
    ds.add_new(0x50000022, "LO", "QZ curve")
    ds.add_new(0x60000022, "LO", "QZ overlay")
    ds.add_new(0x60004000, "LT", "QZ overlay comment")
    ds.add_new(0x60003000, "OW", b"\x00\x01")
    ds.private_block(0x0013, "QZ PRIVATE", create=True).add_new(0x01, "LO", "QZ private")
    out = deid.deidentify(ds)
    assert [e.tag for e in out if e.tag.group in (0x5000, 0x6000, 0x0013)] == []
    kept = Deidentifier(KEY, keep=frozenset({0x60000022})).deidentify(ds)
    assert kept[0x60000022].value == "QZ overlay" and 0x60004000 not in kept


def test_content_sequence_text_is_removed_at_any_depth() -> None:
    ds = Dataset()
    ds.PatientID = "PID1"
    ds.ReasonForTheRequestedProcedure = "QZ reason"
    inner = Dataset()
    inner.TextValue = "QZ deep text"
    inner.PersonName = "QZ^DEEP"
    outer = Dataset()
    outer.TextValue = "QZ text"
    outer.ContentSequence = [inner]
    ds.ContentSequence = [outer]
    wrapper = Dataset()
    wrapper.ContentSequence = [outer]
    ds.add_new(0x00400260, "SQ", [wrapper])  # Performed Protocol Code Sequence: not in the table
    out = Deidentifier(KEY).deidentify(ds)
    assert "ReasonForTheRequestedProcedure" not in out
    assert "QZ" not in str(out), str(out)


def test_keep_burned_in_text_leaves_pixels_and_claims_nothing(shared_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(shared_data / "dicom" / "us" / "examples_palette.dcm", source / "a.dcm")
    out = tmp_path / "out"
    options = ProcessOptions(crop=False, keep_burned_in_text=True, write_dicom=True)
    summary = run_batch(source, out, options, workers=1, deid_key=_key(tmp_path))
    assert summary.pixel_cleaning["mode"].startswith("none")
    record = json.loads(next((out / "metadata").rglob("*.json")).read_text())["ultra"]
    assert not record["pixels_masked"] and record["pixel_cleaning"] == {"method": "none"}
    raw = pydicom.dcmread(source / "a.dcm")
    written = pydicom.dcmread(out / record["dicom"])
    assert np.array_equal(written.pixel_array, raw.pixel_array)
    assert written.get("BurnedInAnnotation") == raw.get("BurnedInAnnotation")
    assert "113101" not in {item.CodeValue for item in written.DeidentificationMethodCodeSequence}
