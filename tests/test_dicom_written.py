"""Written DICOMs (``--write-dicom``) of the 16 real files: a fresh preamble, valid UIDs, the image
modules kept as read, equipment only under the Retain Device Identity Option, unknown tags gone,
and files that dcmtk (and dciodvfy, where installed) accept.

Each real file is copied with planted values the measured outputs leaked (a TIFF-like preamble, an
unknown even tag, a UID element that a dummy would break, software and transducer strings), then
processed twice: masked (regions only, the pixels rewritten) and with ``keep_burned_in_text`` (the
pixel data as read).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from ultra.dicom import InputItem, ProcessOptions, process_input
from ultra.dicom.profile import ENHANCED_EQUIPMENT_SOP_CLASSES, ENHANCED_EQUIPMENT_TYPE1

KEY = b"written-dicom-test-key-0123456789"
MODALITIES = ("US", "CT", "MR")
SOURCE_PREAMBLE = b"II*\x00" + b"QZ" * 62
UNKNOWN_TAG = 0x00109999
PLANTED = {  # keyword -> value, each leaked by today's outputs
    "AnnotationGroupUID": "1.2.826.0.1.3680043.8.498.77",
    "SoftwareVersions": "QZSOFT 4.2",
    "TransducerData": "QZPROBE C5-1",
    "DeviceSerialNumber": "QZSERIAL77",
    "ManufacturerModelName": "QZMODEL 9",
}
DEVICE = ("Manufacturer", "ManufacturerModelName", "DeviceSerialNumber", "SoftwareVersions", "TransducerData")
IMAGE_PIXEL = (
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PlanarConfiguration",
    "PixelAspectRatio",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
    "ICCProfile",
    "ColorSpace",
)
# Decompressing a YBR image gives RGB, pixel-interleaved (PS3.5 8.2): the only changes allowed.
DECOMPRESSED_COLOUR = ("PhotometricInterpretation", "PlanarConfiguration")
CINE_AND_IMAGE = (
    "NumberOfFrames",
    "FrameIncrementPointer",
    "FrameTime",
    "FrameTimeVector",
    "CineRate",
    "RecommendedDisplayFrameRate",
    "StartTrim",
    "StopTrim",
    "ActualFrameDuration",
    "PreferredPlaybackSequencing",
    "EffectiveDuration",
    "FrameDelay",
    "SequenceOfUltrasoundRegions",
    "Modality",
    "BodyPartExamined",
    "Laterality",
    "ImageLaterality",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "LossyImageCompression",
)
UID_PATTERN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


@dataclass(frozen=True)
class Written:
    """One written output and what it was made from."""

    name: str
    original: Path  # the shared file
    source: Path  # the planted copy that was processed
    path: Path | None
    reason: str | None
    warnings: tuple[str, ...]


def _planted(original: Path, folder: Path) -> Path:
    ds = pydicom.dcmread(original)
    ds.preamble = SOURCE_PREAMBLE
    for keyword, value in PLANTED.items():
        setattr(ds, keyword, value)
    if "Manufacturer" not in ds or not ds.Manufacturer:
        ds.Manufacturer = "QZMAKER"
    if ds.Modality == "US":  # so that keeping them is checked on every ultrasound file
        ds.BodyPartExamined = ds.get("BodyPartExamined") or "BREAST"
        ds.Laterality = ds.get("Laterality") or "R"
    ds.add_new(UNKNOWN_TAG, "LO", "QZUNKNOWN")
    ds.private_block(0x0019, "QZ PRIVATE", create=True).add_new(0x10, "LO", "QZPRIVATE")
    path = folder / original.name
    ds.save_as(path, enforce_file_format=True)
    return path


def _caught(caught: list[warnings.WarningMessage]) -> list[str]:
    return [f"{w.category.__name__}: {w.message}" for w in caught]


def _write(source: Path, original: Path, out: Path, options: ProcessOptions) -> Written:
    """Process one file; the warnings kept are those that reading the source alone does not give
    (an implicit-VR file with the planted unknown tag warns as it is parsed)."""
    with warnings.catch_warnings(record=True) as reading:
        warnings.simplefilter("always")
        list(pydicom.dcmread(source).iterall())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = process_input(InputItem(source.name, source.name, path=str(source)), str(out), options, KEY)
    found = tuple(w for w in _caught(caught) if w not in set(_caught(reading)))
    path = out / outcome.record["dicom"] if outcome.status == "processed" and outcome.record else None
    return Written(source.name, original, source, path, outcome.reason, found)


def _originals(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "dicom").rglob("*.dcm"))
    if len(files) != 16:
        pytest.skip(f"expected the 16 real DICOM files under {shared_data / 'dicom'}, found {len(files)}")
    return files


VARIANTS = {
    "masked": ProcessOptions(write_dicom=True, modalities=MODALITIES, ocr=False),
    "unmasked": ProcessOptions(write_dicom=True, modalities=MODALITIES, keep_burned_in_text=True),
    "device": ProcessOptions(
        write_dicom=True, modalities=MODALITIES, keep_burned_in_text=True, retain_device_identity=True
    ),
}


def write_all(shared_data: Path, root: Path, variants: tuple[str, ...]) -> dict[str, list[Written]]:
    """Every real file, planted, written under each of ``variants`` (names of :data:`VARIANTS`)."""
    (root / "sources").mkdir(parents=True)
    results: dict[str, list[Written]] = {name: [] for name in variants}
    for original in _originals(shared_data):
        source = _planted(original, root / "sources")
        for variant in variants:
            out = root / variant / original.stem
            results[variant].append(_write(source, original, out, VARIANTS[variant]))
    return results


@pytest.fixture(scope="module")
def written(shared_data: Path, tmp_path_factory) -> dict[str, list[Written]]:
    """Every real file written masked, unmasked, and unmasked with the device identity option."""
    return write_all(shared_data, tmp_path_factory.mktemp("written"), tuple(VARIANTS))


def _every(written: dict[str, list[Written]]) -> list[Written]:
    return [w for outputs in written.values() for w in outputs if w.path is not None]


def test_every_file_is_written_without_a_pydicom_warning(written: dict[str, list[Written]]) -> None:
    for variant in ("unmasked", "device"):
        failed = [(w.name, w.reason) for w in written[variant] if w.path is None]
        assert not failed, f"{variant}: {failed}"
    masked = [w for w in written["masked"] if w.path is not None]
    assert len(masked) >= 8, [(w.name, w.reason) for w in written["masked"]]
    noisy = [(w.name, w.warnings) for w in _every(written) if w.warnings]
    assert not noisy, noisy


def test_preamble_is_fresh_zeros(written: dict[str, list[Written]]) -> None:
    for w in _every(written):
        head = w.path.read_bytes()[:132]
        assert w.source.read_bytes()[:4] == SOURCE_PREAMBLE[:4]
        assert head[:128] == bytes(128) and head[128:] == b"DICM", w.name


def _elements(ds: Dataset):
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _elements(item)


def test_every_ui_element_holds_valid_uids(written: dict[str, list[Written]]) -> None:
    deid_uid = None
    for w in _every(written):
        ds = pydicom.dcmread(w.path)
        for elem in [*_elements(ds.file_meta), *_elements(ds)]:
            if elem.VR != "UI" or elem.is_empty:
                continue
            for value in elem.value if elem.VM > 1 else [elem.value]:
                assert len(value) <= 64 and UID_PATTERN.fullmatch(value), (w.name, elem.tag, value)
        deid_uid = deid_uid or str(ds.AnnotationGroupUID)
        assert ds.AnnotationGroupUID != PLANTED["AnnotationGroupUID"], w.name
        assert str(ds.AnnotationGroupUID).startswith("2.25."), w.name
    from ultra.dicom import Deidentifier

    assert deid_uid == Deidentifier(KEY).remap_uid(PLANTED["AnnotationGroupUID"])  # keyed, as other UIDs


def _value(ds: Dataset, keyword: str) -> object:
    return ds[keyword].value if keyword in ds else None


def test_image_modules_are_the_sources(written: dict[str, list[Written]]) -> None:
    for w in _every(written):
        source, out = pydicom.dcmread(w.source), pydicom.dcmread(w.path)
        masked = w in written["masked"]
        assert out.Modality and (out.Modality != "US" or (out.BodyPartExamined and out.Laterality)), w.name
        for keyword in IMAGE_PIXEL + CINE_AND_IMAGE:
            if masked and keyword in DECOMPRESSED_COLOUR and source.PhotometricInterpretation.startswith("YBR"):
                continue
            assert _value(out, keyword) == _value(source, keyword), (w.name, keyword)
        if masked and source.PhotometricInterpretation.startswith("YBR"):
            assert (out.PhotometricInterpretation, out.PlanarConfiguration) == ("RGB", 0), w.name
        if not masked:  # the pixel data as read, in its transfer syntax
            assert out.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID, w.name
            assert out.PixelData == source.PixelData, w.name
            continue
        for index in sorted({0, int(source.get("NumberOfFrames", 1) or 1) - 1}):
            before = pydicom.pixels.pixel_array(w.source, index=index)
            after = pydicom.pixels.pixel_array(w.path, index=index)
            assert after.shape == before.shape and after.dtype == before.dtype, w.name
            same = np.all(after == before, axis=-1) if after.ndim == 3 else after == before
            assert same.mean() > 0.3, (w.name, index, same.mean())  # the scan is kept as read


def test_device_identity_only_under_the_option(written: dict[str, list[Written]]) -> None:
    for w in _every(written):
        source, out = pydicom.dcmread(w.source), pydicom.dcmread(w.path)
        codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
        if w in written["device"]:
            for keyword in DEVICE:
                assert _value(out, keyword) == _value(source, keyword), (w.name, keyword)
            assert "113109" in codes, w.name
            continue
        if out.SOPClassUID in ENHANCED_EQUIPMENT_SOP_CLASSES:  # Type 1 there: a dummy
            for keyword in ENHANCED_EQUIPMENT_TYPE1:
                assert _value(out, keyword) in (None, "ANONYMIZED"), (w.name, keyword)
        else:
            assert out.Manufacturer == "", w.name  # Type 2: present, empty
            assert "ManufacturerModelName" not in out and "SoftwareVersions" not in out, w.name
        assert "TransducerData" not in out, w.name
        assert "QZSERIAL" not in str(out.get("DeviceSerialNumber", "")), w.name
        assert "113109" not in codes, w.name
        assert out.file_meta.ImplementationClassUID == pydicom.uid.PYDICOM_IMPLEMENTATION_UID, w.name


def test_unknown_and_private_tags_are_gone(written: dict[str, list[Written]]) -> None:
    from pydicom.datadict import dictionary_has_tag, repeater_has_tag

    for w in _every(written):
        raw = w.path.read_bytes()
        assert b"QZUNKNOWN" not in raw and b"QZPRIVATE" not in raw, w.name
        ds = pydicom.dcmread(w.path)
        assert Tag(UNKNOWN_TAG) not in ds, w.name
        for elem in _elements(ds):
            assert not elem.tag.is_private, (w.name, elem.tag)
            assert dictionary_has_tag(elem.tag) or repeater_has_tag(elem.tag), (w.name, elem.tag)


def test_dcmtk_reads_every_written_file(written: dict[str, list[Written]]) -> None:
    dcmdump = shutil.which("dcmdump")
    if dcmdump is None:
        pytest.skip("dcmtk is not installed (Debian package dcmtk)")
    for w in _every(written):
        run = subprocess.run([dcmdump, "-E", str(w.path)], capture_output=True, text=True, errors="replace")
        problems = [line for line in run.stderr.splitlines() if line.startswith(("E:", "F:", "W:"))]
        assert run.returncode == 0 and not problems, (w.name, run.returncode, problems)


def _dciodvfy_errors(dciodvfy: str, path: Path) -> set[str]:
    run = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, errors="replace")
    return {line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")}


def test_dciodvfy_finds_no_error_the_source_does_not_have(written: dict[str, list[Written]]) -> None:
    """The IOD checker (dicom3tools): whatever it finds in a written file, it found in the shared
    file already (a Laterality the source never recorded is not ours to invent)."""
    dciodvfy = shutil.which("dciodvfy")
    if dciodvfy is None:
        pytest.skip("dciodvfy is not installed (Debian package dicom3tools)")
    baseline: dict[Path, set[str]] = {}
    for w in _every(written):
        if w.original not in baseline:
            baseline[w.original] = _dciodvfy_errors(dciodvfy, w.original)
        new = _dciodvfy_errors(dciodvfy, w.path) - baseline[w.original]
        assert not new, (w.name, sorted(new))
