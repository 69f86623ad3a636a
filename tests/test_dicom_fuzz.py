"""Adversarial runs of ``ultra dicom``: planted PHI everywhere, broken and odd inputs, seeded mutations.

Each run builds its own small synthetic ultrasound instances with markers in every Table E.1-1
attribute a string can hold, in sequences, private tags, overlays, curves, file and folder names,
and as burned-in text (Latin and Chinese, several places and sizes). The real CLI runs in a
subprocess; the run must account for every input, leak no marker in any output byte or in what the
OCR can read back, mask the pixels under every planted text box, and never print a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from data_zh.fonts import BUNDLED_FONT
from ultra.dicom.burned_in import ocr_available
from ultra.dicom.deid import Deidentifier
from ultra.dicom.profile import profile_entries
from ultra.dicom.sources import input_id

pytestmark = pytest.mark.skipif(not ocr_available(), reason="needs the ocr extra (rapidocr, onnxruntime)")

REPO = Path(__file__).resolve().parents[1]
KEY = b"fuzz-key-0123456789abcdef0123456789"
WIDTH, HEIGHT = 192, 144
REGION = (24, 20, 168, 124)  # x0, y0, x1, y1 (half-open) of the ultrasound region
SPECKLE_MAX = 110  # the brightest speckle; burned-in text is drawn at 255
UID_ROOT = "1.2.826.0.1.3680043.10.999."
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
TEXT_VRS = {"LO", "SH", "ST", "LT", "UT", "UC", "PN", "CS", "AE"}
CHINESE_HEADER = "王小明"
CHINESE_FOLDER = "李雷"
BURNED_LATIN = "ZHANG"
BURNED_CHINESE = "韩梅梅"


@dataclass
class Planted:
    """One input of a run and what must happen to it."""

    relative: str
    status: str  # processed / skipped / failed
    sop: str | None = None
    texts: list[tuple[tuple[int, int, int, int], set[int]]] = field(default_factory=list)  # box, frames


def _marker(seed: int, index: int) -> str:
    return f"QZ{seed}K{index:03d}"


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(BUNDLED_FONT), size)


def test_the_bundled_font_draws_every_planted_character() -> None:
    """Burned-in text is drawn with the font shipped in data_zh, never a system path; a missing
    glyph would plant boxes instead of text and the OCR checks would pass for the wrong reason."""
    cmap = TTFont(str(BUNDLED_FONT)).getBestCmap()
    planted = f"{BURNED_LATIN} {BURNED_CHINESE}0123456789"
    assert [c for c in planted if not c.isspace() and ord(c) not in cmap] == []


def _frames(rng: np.random.Generator, count: int, texts: list[tuple[str, tuple[int, int], int, set[int]]]):
    """Speckle inside REGION, text drawn on the frames each text lists; returns frames and boxes."""
    x0, y0, x1, y1 = REGION
    frames, boxes = [], []
    for index in range(count):
        frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        speckle = rng.gamma(2.0, 18.0, (y1 - y0, x1 - x0, 1)).clip(0, SPECKLE_MAX)
        frame[y0:y1, x0:x1] = speckle.astype(np.uint8)
        image = Image.fromarray(frame)
        draw = ImageDraw.Draw(image)
        for text, at, size, on in texts:
            if index in on:
                draw.text(at, text, font=_font(size), fill=(255, 255, 255))
        frames.append(np.asarray(image))
    for text, at, size, on in texts:
        boxes.append((ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox(at, text, font=_font(size)), on))
    return frames, boxes


def _header(seed: int, rng: np.random.Generator, sop: str, study: str) -> Dataset:
    """A US instance header with a marker in every Table E.1-1 attribute a string or UID can hold."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for index, entry in enumerate(profile_entries()):
        try:
            tag = int(entry.tag, 16)
        except ValueError:
            continue
        if tag >> 16 in (0x0000, 0x0002):  # command set and file meta: not in an instance's data set
            continue
        vr = dictionary_VR(tag)
        marker = _marker(seed, index)
        if vr in TEXT_VRS:
            ds.add_new(tag, vr, f"{marker}^{marker}" if vr == "PN" else marker)
        elif vr == "UI":
            ds.add_new(tag, vr, f"{UID_ROOT}{seed}.{index}")
        elif vr == "DA":
            ds.add_new(tag, vr, "20240315")
        elif vr == "DT":
            ds.add_new(tag, vr, "20240315101500")
        elif vr == "TM":
            ds.add_new(tag, vr, "101500")
        elif vr == "SQ":
            item = Dataset()
            item.PatientName = f"{marker}^NESTED"
            item.TextValue = f"{marker} nested text"
            item.ReferencedSOPInstanceUID = f"{UID_ROOT}{seed}.{index}.1"
            ds.add_new(tag, vr, [item])
    ds.PatientName = f"{_marker(seed, 900)}^{CHINESE_HEADER}"
    ds.PatientID = _marker(seed, 901)
    ds.PatientBirthDate = "19630411"
    content = Dataset()
    content.ValueType = "TEXT"
    content.TextValue = f"{_marker(seed, 902)} {CHINESE_HEADER} reported"
    ds.ContentSequence = [content]
    ds.ReasonForTheRequestedProcedure = _marker(seed, 903)
    block = ds.private_block(0x0011, "HOSPITAL PRIVATE", create=True)
    block.add_new(0x01, "LO", _marker(seed, 904))
    ds.add_new(0x60000022, "LO", _marker(seed, 905))  # overlay description
    ds.add_new(0x60004000, "LT", _marker(seed, 906))  # overlay comments
    ds.add_new(0x50000022, "LO", _marker(seed, 907))  # curve description
    ds.Modality = "US"
    ds.SOPClassUID = US_MULTIFRAME
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = f"{UID_ROOT}{seed}.2.{int(rng.integers(1000))}"
    return ds


def _write(path: Path, ds: Dataset, frames: list[np.ndarray], regions: bool, claim_clean: bool) -> None:
    ds.Rows, ds.Columns = HEIGHT, WIDTH
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.NumberOfFrames = len(frames)
    ds.PixelData = np.stack(frames).tobytes()
    if claim_clean:
        ds.BurnedInAnnotation = "NO"  # a lie: the frames carry text
    if regions:
        region = Dataset()
        region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = 1, 1, 0
        x0, y0, x1, y1 = REGION
        region.RegionLocationMinX0, region.RegionLocationMinY0 = x0, y0
        region.RegionLocationMaxX1, region.RegionLocationMaxY1 = x1 - 1, y1 - 1
        ds.SequenceOfUltrasoundRegions = [region]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID") or f"{UID_ROOT}4"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "QZAETITLE"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _texts(
    rng: np.random.Generator, seed: int, count: int
) -> list[tuple[str, tuple[int, int], int, set[int]]]:
    """Burned-in text: in the top band, inside the region (twice), outside it, and on one frame only."""
    every = set(range(count))
    inside_x, inside_y = int(rng.integers(30, 80)), int(rng.integers(30, 60))
    return [
        (f"{BURNED_LATIN}{seed}1", (2, 2), 11, every),
        (f"{BURNED_LATIN} {seed}2", (inside_x, inside_y), int(rng.integers(12, 17)), every),
        (f"{BURNED_CHINESE}{seed}", (int(rng.integers(30, 90)), int(rng.integers(80, 100))), 14, every),
        (f"{BURNED_LATIN}{seed}3", (int(rng.integers(60, 120)), 127), 11, every),
        (f"{BURNED_CHINESE}", (40, 64), 13, {count - 1}),
    ]


def _build_run(root: Path, seed: int, with_failures: bool) -> list[Planted]:
    """SOURCE for one seeded run; returns every input with its expected outcome."""
    rng = np.random.default_rng(seed)
    folder = f"QZ{seed}KDIR_{CHINESE_FOLDER}"
    study = f"{UID_ROOT}{seed}.1"
    planted: list[Planted] = []
    kinds = ["clean", "clean", "clean"]
    mutations = ["other_modality", "duplicate", "drop_attributes", "odd_strings"]
    if with_failures:
        mutations += ["truncate", "garbage_after_dicm", "no_sop_uid", "too_many_frames"]
    kinds += list(rng.choice(mutations, size=3, replace=False))
    for number, kind in enumerate(kinds):
        relative = f"{folder}/QZ{seed}KFILE{number}.dcm"
        sop = f"{UID_ROOT}{seed}.3.{number}"
        count = int(rng.choice([1, 3]))
        texts = _texts(rng, seed, count)
        frames, boxes = _frames(rng, count, texts)
        ds = _header(seed, rng, sop, study)
        regions, lie = bool(rng.integers(2)) or number == 0, bool(rng.integers(2))
        status = "processed"
        if kind == "other_modality":
            ds.Modality, status = "CT", "skipped"
        elif kind == "duplicate":
            ds.SOPInstanceUID, status = f"{UID_ROOT}{seed}.3.0", "skipped"
        elif kind == "drop_attributes":
            for elem in list(ds)[:: int(rng.integers(2, 6))]:
                if elem.keyword not in {"Modality", "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"}:
                    del ds[elem.tag]
        elif kind == "odd_strings":
            for elem in ds:
                if elem.VR in {"LO", "LT", "ST", "UT"} and rng.random() < 0.5:
                    elem.value = f"{elem.value}\\{CHINESE_HEADER}\x00\u202e" + "长" * int(rng.integers(1, 40))
        elif kind == "no_sop_uid":
            del ds.SOPInstanceUID
            status = "failed"
        path = root / relative
        _write(path, ds, frames, regions, lie)
        if kind == "truncate":
            data = path.read_bytes()
            path.write_bytes(data[: int(rng.integers(200, len(data) - 16))])
            status = "failed"
        elif kind == "garbage_after_dicm":
            path.write_bytes(b"\0" * 128 + b"DICM" + rng.bytes(4096))
            status = "failed"
        elif kind == "too_many_frames":
            ds = pydicom.dcmread(path)
            ds.NumberOfFrames = count + 2
            ds.save_as(path)
            status = "failed"
        used_sop = sop if status == "processed" else None
        planted.append(Planted(relative, status, used_sop, boxes if status == "processed" else []))
    # Inputs that are not files of DICOM: each must still be accounted for.
    (root / folder / "again").symlink_to(root / folder, target_is_directory=True)
    planted.append(Planted(f"{folder}/again", "skipped"))
    os.mkfifo(root / f"QZ{seed}Kpipe")
    planted.append(Planted(f"QZ{seed}Kpipe", "skipped"))
    if with_failures:  # without them, the run must exit 0
        (root / folder / f"QZ{seed}KNOTES_{CHINESE_FOLDER}.txt").write_text(
            f"{_marker(seed, 950)} 病历", "utf-8"
        )
        planted.append(Planted(f"{folder}/QZ{seed}KNOTES_{CHINESE_FOLDER}.txt", "failed"))
        (root / f"QZ{seed}Kdangling.dcm").symlink_to(root / "gone.dcm")
        planted.append(Planted(f"QZ{seed}Kdangling.dcm", "failed"))
        (root / f"QZ{seed}Kloop").symlink_to(root / f"QZ{seed}Kloop")
        planted.append(Planted(f"QZ{seed}Kloop", "failed"))
    return planted


def _run_cli(
    source: Path, out: Path, key_file: Path, *extra: str, workers: int = 1
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    command = [sys.executable, "-m", "ultra", "dicom", str(source), str(out), "--deid-key", str(key_file)]
    return subprocess.run(
        [*command, "--write-dicom", "--workers", str(workers), *extra],
        capture_output=True,
        env=env,
        timeout=600,
    )


@functools.cache
def _reader():
    from rapidocr import RapidOCR

    return RapidOCR(
        params={"Global.log_level": "critical", "EngineConfig.onnxruntime.intra_op_num_threads": 1}
    )


def _ocr_texts(rgb: np.ndarray) -> list[str]:
    """Everything the OCR (detection + recognition) reads in an output image."""
    return list(_reader()(np.ascontiguousarray(rgb)).txts or [])


def _leaks(out: Path, seed: int, printed: bytes) -> list[str]:
    needles = [f"QZ{seed}K", UID_ROOT, CHINESE_HEADER, CHINESE_FOLDER, "19630411", "QZAETITLE", "病历"]
    blobs = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    blobs["<file names>"] = "\n".join(blobs).encode()
    blobs["<stdout+stderr>"] = printed
    found = []
    for name, blob in blobs.items():
        for needle in needles:
            if needle.lower().encode() in blob.lower():
                found.append(f"{needle!r} in {name}")
    return found


def _assert_masked(pixels: np.ndarray, box: tuple[int, int, int, int], origin: tuple[int, int], what: str):
    x0, y0, x1, y1 = box
    ox, oy = origin
    height, width = pixels.shape[:2]
    top, bottom = min(max(y0 - oy, 0), height), min(max(y1 - oy, 0), height)
    left, right = min(max(x0 - ox, 0), width), min(max(x1 - ox, 0), width)
    area = pixels[top:bottom, left:right]  # the part of the box inside this (possibly cropped) image
    # Masks follow the glyphs (a box's corners may keep speckle): no pixel brighter than speckle stays.
    brightest = area.max() if area.size else 0
    assert brightest <= SPECKLE_MAX, f"{what}: text in box {box} not masked (max {brightest})"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adversarial_run(seed: int, tmp_path: Path) -> None:
    source = tmp_path / "source"
    planted = _build_run(source, seed, with_failures=seed > 0)
    key_file = tmp_path / "deid.key"
    key_file.write_bytes(KEY)
    out = tmp_path / "out"
    run = _run_cli(source, out, key_file, workers=2 if seed == 1 else 1)
    printed = run.stdout + run.stderr
    assert b"Traceback" not in printed, printed.decode(errors="replace")[-3000:]
    failed = [p for p in planted if p.status == "failed"]
    assert run.returncode == (3 if failed else 0), printed.decode(errors="replace")[-3000:]
    assert bool(failed) == (seed > 0)

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    expected = {
        status: sum(p.status == status for p in planted) for status in ("processed", "skipped", "failed")
    }
    assert summary["inputs"] == len(planted)
    assert {status: summary[status] for status in expected} == expected
    errors = {e["id"]: e for e in map(json.loads, (out / "errors.jsonl").read_text("utf-8").splitlines())}
    listed = {input_id(p.relative, KEY): p.status for p in planted if p.status != "processed"}
    assert {i: e["status"] for i, e in errors.items()} == listed
    assert summary["pixel_cleaning"]["mode"] == "OCR text boxes + regions"

    leaks = _leaks(out, seed, printed)
    assert not leaks, leaks

    deid = Deidentifier(KEY)
    for item in (p for p in planted if p.status == "processed"):
        sop = deid.remap_uid(item.sop or "")
        (meta,) = (out / "metadata").rglob(f"{sop}.json")
        record = json.loads(meta.read_text("utf-8"))["ultra"]
        assert record["pixels_masked"] and record["pixel_cleaning"]["method"] == "ocr+regions"
        x0, y0 = record["crop_box"][:2]
        for image, frame_index in zip(record["images"], record["frame_indices"], strict=True):
            pixels = np.asarray(Image.open(out / image))
            for box, on in item.texts:
                if frame_index in on:
                    _assert_masked(pixels, box, (x0, y0), image)
            readable = [t for t in _ocr_texts(pixels) if BURNED_LATIN in t.upper() or "梅" in t or "韩" in t]
            assert not readable, f"{image}: OCR still reads {readable}"
        written = pydicom.dcmread(out / record["dicom"])
        assert written.BurnedInAnnotation == "NO" and written.PatientIdentityRemoved == "YES"
        frames = written.pixel_array.reshape(-1, HEIGHT, WIDTH, 3)
        for index, frame in enumerate(frames):
            for box, on in item.texts:
                if index in on:
                    _assert_masked(frame, box, (0, 0), f"{record['dicom']} frame {index}")

    if seed == 1:  # resume: nothing redone, the same counts (frames included), still no leak
        again = _run_cli(source, out, key_file, "--resume")
        assert again.returncode == run.returncode and b"Traceback" not in again.stdout + again.stderr
        resumed = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        assert (resumed["frames"], resumed["failed"], resumed["processed"]) == (
            summary["frames"],
            summary["failed"],
            0,
        )
        assert not _leaks(out, seed, again.stdout + again.stderr)
