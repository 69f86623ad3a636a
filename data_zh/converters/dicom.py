"""A folder of DICOM files, read from headers only (``stop_before_pixels``): fast, no decoders needed."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from data_zh.converters.base import ConversionError, require_dir
from data_zh.schema import MODALITIES, DicomFrameRef, Labels, Media, Record, qa_turns
from data_zh.splits import split_lookup
from fusion.progress import progress_bar

logger = logging.getLogger(__name__)

DICOM_LICENCE = "as provided with the files (shared test files: MIT, pydicom / pydicom-data)"
DICOM_MODALITY = {
    "US": "US",
    "CT": "CT",
    "MR": "MR",
    "CR": "X-ray",
    "DX": "X-ray",
    "DR": "X-ray",
    "XA": "X-ray",
}
MODALITY_QUESTION = "这张图像是什么成像方式？"
# Header fields worth keeping; never patient identifiers or dates.
_KEPT_TAGS = (
    "Modality",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "PhotometricInterpretation",
    "SOPClassUID",
    "Manufacturer",
    "ManufacturerModelName",
    "BodyPartExamined",
)


def read_dicom_header(path: Path) -> dict[str, Any]:
    """The kept header fields of one file (pixels not read), plus its transfer syntax."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise ConversionError(f"{path}: not a readable DICOM file ({error})") from None
    header = {tag: str(dataset.get(tag)) for tag in _KEPT_TAGS if dataset.get(tag) not in (None, "")}
    header["NumberOfFrames"] = int(dataset.get("NumberOfFrames") or 1)
    for tag in ("Rows", "Columns"):
        if tag in header:
            header[tag] = int(header[tag])
    study = dataset.get("StudyInstanceUID")
    if study:
        # A one-way key, not the UID itself: enough to keep a study in one split, not to re-identify.
        header["StudyKey"] = hashlib.sha256(str(study).encode()).hexdigest()[:16]
    syntax = getattr(dataset, "file_meta", None) and dataset.file_meta.get("TransferSyntaxUID")
    if syntax is not None:
        header["TransferSyntaxUID"] = str(syntax)
        header["TransferSyntax"] = syntax.name
    return header


def dicom_files(root: Path) -> list[Path]:
    """``*.dcm`` files under root (any case), DICOMDIR excluded, sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".dcm")


def convert_dicom(root: str | Path, split_map: dict[str, str] | None = None) -> list[Record]:
    """One modality-recognition record per file (frame 0); unreadable files are logged and skipped."""
    root = require_dir(root, "a folder of .dcm files").resolve()
    files = dicom_files(root)
    if not files:
        raise ConversionError(f"{root}: no .dcm files found")
    split_map = split_lookup("dicom") if split_map is None else split_map
    records = []
    for path in progress_bar(files, description="DICOM headers", total=len(files), leave=False):
        rel = path.relative_to(root).as_posix()
        try:
            header = read_dicom_header(path)
        except ConversionError as error:
            logger.warning("skipped: %s", error)
            continue
        modality = DICOM_MODALITY.get(header.get("Modality", ""), "other")
        records.append(
            Record(
                id=f"dicom-{Path(rel).with_suffix('').as_posix()}",
                source="dicom",
                licence=DICOM_LICENCE,
                specialty="radiology" if modality != "US" else "ultrasound",
                modality=modality,
                language="zh",
                task="modality_recognition",
                media=Media(root=str(root), dicom=[DicomFrameRef(path=rel, frame=0)]),
                conversations=qa_turns(MODALITY_QUESTION, MODALITIES[modality]),
                answer_type="closed",
                labels=Labels(classes=[modality]),
                split=split_map.get(rel),
                extra={"dicom": header},
            )
        )
    return records
