"""The per-instance job of a batch: read, check, sample frames, mask, crop, de-identify, write.

One pure function, :func:`process_input`, that a process pool or Ray Data can call on any worker:
everything it needs travels in its (picklable) arguments and it never raises for a bad file.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pydicom import Dataset

from ultra.dicom.burned_in import PixelPlan, ocr_available, plan_masking, process_detector
from ultra.dicom.deid import Deidentifier
from ultra.dicom.errors import DicomReadError, without_header_values
from ultra.dicom.integrity import check_complete
from ultra.dicom.outputs import atomic_write_json, header_copy, write_dicom, write_dicom_frames, write_png
from ultra.dicom.regions import (
    MAX_SCAN_LOSS,
    Box,
    header_band_rows,
    scan_area_loss,
    scan_box,
    ultrasound_regions,
)
from ultra.dicom.sources import InputItem, read_input_file
from ultra.media.dicom import decode_frame_rgb, frame_count, read_dataset
from ultra.media.limits import DEFAULT_LIMITS

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
    retain_device_identity: bool = Field(
        False, description="PS3.15 Retain Device Identity Option: keep Manufacturer, model, serial numbers"
    )
    keep_burned_in_text: bool = Field(False, description="do not mask pixels (burned-in text stays)")
    ocr: bool = Field(True, description="find burned-in text with OCR when the ocr extra is installed")
    crop: bool = True
    write_dicom: bool = False
    resume: bool = False
    frame_cache_mb: int = Field(
        256, ge=0, description="decoded frames an instance keeps for reuse (MiB; at least one frame is held)"
    )
    ocr_threads: int | None = Field(
        None, ge=1, description="text-detector threads per worker (None: every usable core)"
    )


@dataclass
class InstanceOutcome:
    """What happened to one input (named by its id); ``record`` is the de-identified instance summary."""

    name: str
    status: Status
    reason: str | None = None
    record: dict[str, Any] | None = None
    frames: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _file_bytes(item: InputItem) -> bytes:
    if item.url is not None:
        from ultra.dicom.dicomweb import DicomWebError, fetch_instance

        try:
            return fetch_instance(item.url, max_bytes=DEFAULT_LIMITS.max_bytes)
        except DicomWebError as exc:
            raise DicomReadError(item.id, str(exc)) from None
        except Exception as exc:
            raise DicomReadError(item.id, f"cannot fetch from DICOMweb ({type(exc).__name__})") from None
    return read_input_file(item.path or "", item.id)


def sample_frame_indices(total: int, wanted: int) -> list[int]:
    """Key frames of a cine loop, spread uniformly (``fusion.frame_sampling``), without repeats."""
    if total <= 1:
        return [0]
    from fusion.frame_sampling import uniform_frame_indices

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
    label = item.id
    if item.problem is not None:
        return InstanceOutcome(label, item.problem_status, item.problem)
    ds = None
    try:
        data = _file_bytes(item)
        ds = read_dataset(data, label)
        check_complete(ds, label)
        return _process_dataset(ds, data, label, out, options, key)
    except DicomReadError as exc:
        return InstanceOutcome(exc.name, "failed", without_header_values(exc.reason, ds))
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
        wanted = "/".join(options.modalities)
        # The header's value is not repeated: errors.jsonl and run.log hold no header values.
        reason = f"modality is not {wanted}" if modality else f"no Modality in the header (not {wanted})"
        return InstanceOutcome(label, "skipped", reason)
    if "PixelData" not in ds:
        raise DicomReadError(label, "no pixel data")
    deid = (
        None
        if options.keep_phi
        else Deidentifier(key or b"", retain_device_identity=options.retain_device_identity)
    )
    if deid is not None and not key:
        raise ValueError("a de-identification key is required unless keep_phi is set")
    study, series, sop = _output_uids(ds, deid, label)
    digest = hashlib.sha256(data).hexdigest()
    if options.resume:
        previous = _resumed(out, study, sop, digest)
        if previous is not None:
            return InstanceOutcome(
                label,
                "skipped",
                "already done (resume)",
                previous,
                frames=len(previous.get("images", [])),
                extra={"resumed": True},
            )

    total = frame_count(ds)
    indices = sample_frame_indices(total, options.frames_per_cine)
    frame = _Frames(ds, options, label)
    first = frame(indices[0])
    height, width = first.shape[:2]
    box, box_source = scan_box(ds, first)
    plan = None
    if deid is not None and not options.keep_burned_in_text:
        regions = ultrasound_regions(ds, width, height)
        keep = regions or [box]
        use_ocr = options.ocr and ocr_available()
        # With OCR, text in the top band is found like any other, so the band stops at the scan.
        band = header_band_rows(height)
        band = min(band, min(k.y0 for k in keep)) if use_ocr else band
        views = _written_views(box, width, height, options)
        detector = process_detector(options.ocr_threads) if use_ocr else None
        plan = plan_masking(keep, band, total, frame, use_ocr, views=views, detector=detector)
        whole = Box(0, 0, width, height)
        written = [(index, box if options.crop else whole) for index in indices]
        written += [(index, whole) for index in range(total)] if options.write_dicom else []
        for index, crop in written:
            loss = scan_area_loss(frame(index), plan.keep, plan.band_rows, crop, plan.text_boxes, keep)
            plan.scan_loss = max(plan.scan_loss, loss)
            if loss > MAX_SCAN_LOSS:
                reason = (
                    f"masking would remove {loss:.0%} of the scan area of frame {index} outside text boxes "
                    f"(at most {MAX_SCAN_LOSS:.0%})"
                )
                return InstanceOutcome(label, "failed", reason)
    images: list[str] = []
    for index in indices:
        rgb = frame(index)
        if options.crop:  # crop first: the mask is then drawn on the crop alone, one copy
            rgb = rgb[box.y0 : box.y1, box.x0 : box.x1]
        if plan is not None:
            rgb = plan.apply(rgb, origin=(box.x0, box.y0) if options.crop else (0, 0))
        rel = f"images/{study}/{sop}_f{index:04d}.png"
        write_png(out / rel, np.ascontiguousarray(rgb))
        images.append(rel)
    del first, rgb  # no decoded frame is needed again
    frame.release()

    # In place: the frames are written, and the pixel module that a DICOM output decodes is untouched.
    cleaned = plan is not None and plan.checked
    public = (
        deid.deidentify(ds, pixels_cleaned=cleaned, pixel_note=plan.note() if plan else "", in_place=True)
        if deid
        else ds
    )
    if plan is not None and not cleaned:  # masked, but not every frame could be checked for text
        public.BurnedInAnnotation = "YES"
    dicom_rel = None
    if options.write_dicom:
        dicom_rel = f"dicom/{study}/{sop}.dcm"
        _write_dicom(public, out / dicom_rel, total, plan, options, label)
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
        "pixels_masked": plan is not None,
        "pixel_cleaning": plan.summary() if plan is not None else {"method": "none"},
        "deidentified": deid is not None,
        "dicom": dicom_rel,
        "instance_number": _int_or_none(ds.get("InstanceNumber")),
        "series_number": _int_or_none(ds.get("SeriesNumber")),
    }
    atomic_write_json(record_path(out, study, sop), {"ultra": record, "dicom": _json_metadata(public)})
    extra = {"ocr_seconds": plan.ocr_seconds} if plan is not None else {}
    return InstanceOutcome(label, "processed", None, record, frames=len(indices), extra=extra)


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _written_views(box: Box, width: int, height: int, options: ProcessOptions) -> list[Box]:
    """The parts of a frame that outputs show: the PNG crop, and the whole frame of a DICOM output."""
    whole = Box(0, 0, width, height)
    views = [box] if options.crop else [whole]
    if options.write_dicom and views[0] != whole:
        views.append(whole)
    return views


class _Frames:
    """Decode frames on demand: OCR, the PNGs and the DICOM output share them.

    Decoded frames are kept up to ``options.frame_cache_mb`` (least recently used out first): the
    default holds a 170-frame 800x600 cine, decoded once, while an instance of huge frames costs
    re-decoding rather than memory (one frame of 8000x8000).
    """

    def __init__(self, ds: Dataset, options: ProcessOptions, label: str) -> None:
        self.ds, self.plugins, self.label = ds, options.plugins, label
        self.budget = options.frame_cache_mb << 20
        self.decoded: OrderedDict[int, np.ndarray] = OrderedDict()

    def __call__(self, index: int) -> np.ndarray:
        if index in self.decoded:
            self.decoded.move_to_end(index)
            return self.decoded[index]
        while self.decoded:  # make room first, so a new frame never sits beside a full cache
            held = sum(a.nbytes for a in self.decoded.values())
            if held + next(iter(self.decoded.values())).nbytes <= self.budget:
                break
            self.decoded.popitem(last=False)
        rgb = decode_frame_rgb(self.ds, index, plugins=self.plugins, name=self.label)
        self.decoded[index] = rgb
        return rgb

    def release(self) -> None:
        """Drop every decoded frame (the DICOM output decodes its own, one at a time)."""
        self.decoded.clear()


def _write_dicom(
    public: Dataset, path: Path, total: int, plan: PixelPlan | None, options: ProcessOptions, label: str
) -> None:
    """Save the de-identified header; when pixels were masked, every frame masked, in the source's
    pixel representation (see :mod:`ultra.dicom.pixel_module`), decoded and written one at a time."""
    if plan is None:
        write_dicom(path, public)  # encoded as its transfer syntax says
        return
    from ultra.dicom.pixel_module import masked_frames, set_written_pixel_module

    kept = plan.apply(np.ones((int(public.Rows), int(public.Columns)), dtype=bool))
    frames = masked_frames(public, kept, total, plugins=options.plugins, name=label)
    first, photometric = next(frames)
    header = header_copy(public)  # ``public``'s pixel module stays as read until every frame is
    set_written_pixel_module(header, photometric)
    chunks = itertools.chain([first], (chunk for chunk, _ in frames))
    write_dicom_frames(path, header, chunks, len(first), total)
    set_written_pixel_module(public, photometric)  # the metadata record describes the written file
