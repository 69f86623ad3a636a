"""The per-instance job of a batch: read, check, sample frames, mask, crop, de-identify, write.

One pure function, :func:`process_input`, that a process pool or Ray Data can call on any worker:
everything it needs travels in its (picklable) arguments and it never raises for a bad file.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pydicom import Dataset

from ultra.dicom.deid import Deidentifier, phi_strings, redact
from ultra.dicom.errors import DicomReadError
from ultra.dicom.outputs import atomic_write_bytes, atomic_write_json, write_png
from ultra.dicom.regions import (
    header_band_rows,
    mask_outside,
    needs_pixel_cleaning,
    scan_box,
    ultrasound_regions,
)
from ultra.dicom.sources import InputItem
from ultra.media.dicom import decode_frame_rgb, frame_count, read_dataset

logger = logging.getLogger(__name__)

Status = Literal["processed", "skipped", "failed"]
_BULK_VRS = ("OB", "OW", "OF", "OD", "OL", "OV", "UN")


class ProcessOptions(BaseModel):
    """How each instance is turned into outputs (the same on every worker)."""

    model_config = ConfigDict(frozen=True)

    frames_per_cine: int = Field(4, ge=1, description="key frames sampled from a multi-frame cine loop")
    plugins: tuple[str, ...] | None = Field(
        None, description="pydicom decoding plugins; None = all installed"
    )
    modalities: tuple[str, ...] = ("US",)
    keep_phi: bool = False
    crop: bool = True
    write_dicom: bool = False
    resume: bool = False


@dataclass
class InstanceOutcome:
    """What happened to one input; ``record`` is the de-identified instance summary when it worked."""

    name: str
    status: Status
    reason: str | None = None
    record: dict[str, Any] | None = None
    frames: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _file_bytes(item: InputItem) -> bytes:
    if item.url is not None:
        from ultra.dicom.dicomweb import fetch_instance

        try:
            return fetch_instance(item.url)
        except Exception as exc:
            raise DicomReadError(item.name, f"cannot fetch from DICOMweb ({type(exc).__name__})") from None
    try:
        return Path(item.path or "").read_bytes()
    except OSError as exc:
        raise DicomReadError(item.name, f"cannot open file ({exc.strerror})") from None


def sample_frame_indices(total: int, wanted: int) -> list[int]:
    """Key frames of a cine loop, spread uniformly (``fusion.video``), without repeats."""
    if total <= 1:
        return [0]
    from fusion.video import uniform_frame_indices

    return sorted(set(uniform_frame_indices(total, min(total, wanted))))


def _json_metadata(ds: Dataset) -> dict[str, Any]:
    """The header as DICOM JSON, without pixel data or other bulk binary elements."""
    slim = Dataset()
    for elem in ds:
        if elem.tag.group == 0x7FE0 or elem.VR in _BULK_VRS:
            continue
        slim.add(elem)
    return slim.to_json_dict()


def _output_uids(ds: Dataset, deid: Deidentifier | None, label: str) -> tuple[str, str, str]:
    uids = []
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        value = str(ds.get(keyword, "") or "")
        if not value:
            raise DicomReadError(label, f"missing {keyword}")
        uids.append(deid.remap_uid(value) if deid else value)
    return uids[0], uids[1], uids[2]


def record_path(outdir: Path, study: str, sop: str) -> Path:
    return outdir / "metadata" / study / f"{sop}.json"


def _resumed(outdir: Path, study: str, sop: str, digest: str) -> dict[str, Any] | None:
    import json

    path = record_path(outdir, study, sop)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))["ultra"]
    except (ValueError, KeyError):
        return None
    images_ok = all((outdir / image).is_file() for image in record.get("images", []))
    return record if record.get("source_sha256") == digest and images_ok else None


def process_input(
    item: InputItem, outdir: str, options: ProcessOptions, key: bytes | None
) -> InstanceOutcome:
    """Process one input into OUTDIR; bad files come back as ``failed`` with a reason, never raise."""
    out = Path(outdir)
    label = item.name
    try:
        data = _file_bytes(item)
        ds = read_dataset(data, label)
        label = redact(item.name, phi_strings(ds))
        return _process_dataset(ds, data, label, out, options, key)
    except DicomReadError as exc:
        return InstanceOutcome(exc.name, "failed", exc.reason)
    except ImportError as exc:
        return InstanceOutcome(label, "failed", f"missing dependency ({exc.name})")
    except Exception as exc:  # one bad file must never end a batch
        logger.debug("%s: unexpected %s", label, type(exc).__name__, exc_info=True)
        return InstanceOutcome(label, "failed", f"unexpected error ({type(exc).__name__})")


def _process_dataset(
    ds: Dataset, data: bytes, label: str, out: Path, options: ProcessOptions, key: bytes | None
) -> InstanceOutcome:
    modality = str(ds.get("Modality", "") or "").upper()
    if modality not in options.modalities:
        return InstanceOutcome(
            label, "skipped", f"modality {modality or 'missing'} is not {'/'.join(options.modalities)}"
        )
    if "PixelData" not in ds:
        raise DicomReadError(label, "no pixel data")
    deid = None if options.keep_phi else Deidentifier(key or b"")
    if deid is not None and not key:
        raise ValueError("a de-identification key is required unless keep_phi is set")
    study, series, sop = _output_uids(ds, deid, label)
    digest = hashlib.sha256(data).hexdigest()
    if options.resume:
        previous = _resumed(out, study, sop, digest)
        if previous is not None:
            return InstanceOutcome(
                label, "skipped", "already done (resume)", previous, extra={"resumed": True}
            )

    total = frame_count(ds)
    indices = sample_frame_indices(total, options.frames_per_cine)
    clean_pixels = deid is not None and needs_pixel_cleaning(ds)
    images: list[str] = []
    box = None
    box_source = "none"
    for index in indices:
        rgb = decode_frame_rgb(ds, index, plugins=options.plugins, name=label)
        if box is None:
            box, box_source = scan_box(ds, rgb)
            height, width = rgb.shape[:2]
        origin = (0, 0)
        if options.crop:
            rgb, origin = rgb[box.y0 : box.y1, box.x0 : box.x1], (box.x0, box.y0)
        if clean_pixels:
            keep = ultrasound_regions(ds, width, height) or [box]
            rgb = mask_outside(rgb, keep, header_band_rows(height), origin)
        rgb = np.ascontiguousarray(rgb)
        rel = f"images/{study}/{sop}_f{index:04d}.png"
        write_png(out / rel, rgb)
        images.append(rel)

    # In place: the frames are written, and the pixel module that a DICOM output decodes is untouched.
    public = deid.deidentify(ds, pixels_cleaned=clean_pixels, in_place=True) if deid else ds
    dicom_rel = None
    if options.write_dicom:
        dicom_rel = f"dicom/{study}/{sop}.dcm"
        _write_dicom(public, ds, out / dicom_rel, options, label, clean_pixels)
    record = {
        "study": study,
        "series": series,
        "sop_instance": sop,
        "modality": modality,
        "source_sha256": digest,
        "frames_total": total,
        "frame_indices": indices,
        "images": images,
        "crop_box": [box.x0, box.y0, box.x1, box.y1] if box else None,
        "crop_source": box_source if options.crop else "none",
        "pixels_masked": clean_pixels,
        "deidentified": deid is not None,
        "dicom": dicom_rel,
        "instance_number": _int_or_none(ds.get("InstanceNumber")),
        "series_number": _int_or_none(ds.get("SeriesNumber")),
    }
    atomic_write_json(record_path(out, study, sop), {"ultra": record, "dicom": _json_metadata(public)})
    return InstanceOutcome(label, "processed", None, record, frames=len(indices))


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _write_dicom(
    public: Dataset, source: Dataset, path: Path, options: ProcessOptions, label: str, clean: bool
) -> None:
    """Save the de-identified header; when pixels were masked, with every frame masked (native RGB)."""
    import io

    if clean:
        frames = []
        for index in range(frame_count(source)):
            rgb = decode_frame_rgb(source, index, plugins=options.plugins, name=label)
            keep = ultrasound_regions(source, rgb.shape[1], rgb.shape[0]) or [scan_box(source, rgb)[0]]
            frames.append(mask_outside(rgb, keep, header_band_rows(rgb.shape[0])))
        array = frames[0] if len(frames) == 1 else np.stack(frames)
        public.set_pixel_data(array, "RGB", 8, generate_instance_uid=False)
    buffer = io.BytesIO()
    public.save_as(buffer, enforce_file_format=True)
    atomic_write_bytes(path, buffer.getvalue())
