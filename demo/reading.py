"""Uploaded files to images the page may show and the model may see.

PNG/JPEG/DICOM are read by ``ultra.media`` (the one reader), from the file's bytes read once (its
size checked first), so an upload is on disk only while ``SessionFiles.take`` holds it. A DICOM is shown de-identified the
way ``ultra dicom`` writes its outputs (``ultra.dicom.burned_in``): everything outside the
ultrasound regions and the top band where scanners print names is masked, plus text the OCR finds
when the ``ocr`` extra is installed; header text comes only from ``ultra.dicom``'s PS3.15
de-identified copy of the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ultra.dicom.burned_in import ocr_available, plan_masking
from ultra.dicom.deid import Deidentifier
from ultra.dicom.regions import header_band_rows, scan_box, ultrasound_regions
from ultra.media import MediaError, MediaLimits, is_dicom_file, read_dataset, read_image

# De-identified fields worth showing (pseudonymised ID, shifted dates, acquisition facts).
HEADER_FIELDS = {
    "PatientID": "患者编号（假名）",
    "StudyDate": "检查日期（已偏移）",
    "Modality": "模态",
    "Manufacturer": "设备厂商",
    "BodyPartExamined": "检查部位",
    "Rows": "行数",
    "Columns": "列数",
    "NumberOfFrames": "帧数",
    "PatientIdentityRemoved": "已去标识",
}


@dataclass
class ShownImage:
    """One uploaded image: what the page shows and the model sees, and de-identified header text."""

    image: Image.Image
    header: list[str] = field(default_factory=list)


def _deidentified_dicom(data: bytes, source_id: str, deid: Deidentifier, limits: MediaLimits) -> ShownImage:
    ds = read_dataset(data, name=source_id, limits=limits)
    image = read_image(data, limits=limits, source_id=source_id)
    rgb = np.asarray(image)
    height, width = rgb.shape[:2]
    keep = ultrasound_regions(ds, width, height) or [scan_box(ds, rgb)[0]]
    plan = plan_masking(keep, header_band_rows(height), 1, lambda _: rgb, ocr_available())
    image = Image.fromarray(np.ascontiguousarray(plan.apply(rgb)))
    public = deid.deidentify(ds)
    header = [
        f"{label}：{public.get(keyword)}" for keyword, label in HEADER_FIELDS.items() if keyword in public
    ]
    return ShownImage(image, header)


def read_upload(path: str | Path, source_id: str, deid: Deidentifier, limits: MediaLimits) -> ShownImage:
    """One uploaded file; ``MediaError`` (naming ``source_id``, never the file name) if unusable."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError:
        raise MediaError(source_id, "file not found") from None
    if not path.is_file():
        raise MediaError(source_id, "not a regular file")
    limits.check_bytes(source_id, info.st_size)
    dicom = is_dicom_file(path)
    data = path.read_bytes()
    if dicom:
        return _deidentified_dicom(data, source_id, deid, limits)
    return ShownImage(read_image(data, limits=limits, source_id=source_id))


__all__ = ["MediaError", "ShownImage", "read_upload"]
