"""Burned-in text: what is masked in every frame an instance writes, and why.

Two layers, whatever the header's BurnedInAnnotation claims: everything outside the ultrasound
regions (the Sequence of Ultrasound Regions, else the detected scan region) and the top band is
blanked; then text the OCR finds on a few frames (first, middle, last and scene changes) is
masked on every frame, since scanners burn names and measurements into the scan area too. OCR is
the ``ocr`` extra (rapidocr's PP-OCR detector, whose ONNX model ships inside its wheel, so nothing
downloads at run time); without it, region masking alone is done and reported as such.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ultra.dicom.regions import Box, mask_outside

OCR_INSTALL_HINT = "install the ocr extra for burned-in text detection: pip install 'ultra[ocr]'"
OCR_MAX_FRAMES = 6
SCENE_PROBE_FRAMES = 12
BOX_PAD_FRACTION = 0.3  # of the box height, around each detected box: glyph edges, descenders
BOX_PAD_MIN = 2


@dataclass
class PixelPlan:
    """What to blank in every frame of one instance (frame coordinates) and how it was decided."""

    keep: list[Box]
    band_rows: int
    text_boxes: list[Box] = field(default_factory=list)
    method: str = "regions"
    ocr_frames: list[int] = field(default_factory=list)
    ocr_seconds: float = 0.0

    def apply(self, rgb: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """Mask a frame, or a crop of it whose top-left corner is at ``origin`` (x, y)."""
        out = mask_outside(rgb, self.keep, self.band_rows, origin)
        height, width = out.shape[:2]
        ox, oy = origin
        for box in self.text_boxes:
            x0, y0 = max(box.x0 - ox, 0), max(box.y0 - oy, 0)
            x1, y1 = min(box.x1 - ox, width), min(box.y1 - oy, height)
            if x1 > x0 and y1 > y0:
                out[y0:y1, x0:x1] = 0
        return out

    def summary(self) -> dict[str, object]:
        """For the instance record (deterministic: timings go to the batch summary instead)."""
        return {"method": self.method, "text_boxes": len(self.text_boxes), "ocr_frames": self.ocr_frames}

    def note(self) -> str:
        """Short enough for Deidentification Method (LO, 64 characters with the prefix)."""
        if self.method == "ocr+regions":
            return f"OCR, {len(self.text_boxes)} text boxes; outside regions"
        return "outside regions (no OCR)"


@functools.cache
def ocr_available() -> bool:
    """Whether the ``ocr`` extra (rapidocr + onnxruntime) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("rapidocr", "onnxruntime"))


@functools.cache
def _ocr_engine():  # one per process: loading the ONNX sessions costs far more than a frame
    from rapidocr import RapidOCR

    return RapidOCR(
        params={
            "Global.log_level": "critical",
            "EngineConfig.onnxruntime.intra_op_num_threads": 1,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )


def detect_text_boxes(rgb: np.ndarray) -> list[Box]:
    """Boxes of text the OCR detector finds in one frame, padded, in frame coordinates.

    Detection alone (no recognition): every text-like area is masked, legible or not.
    """
    height, width = rgb.shape[:2]
    result = _ocr_engine()(np.ascontiguousarray(rgb), use_det=True, use_cls=False, use_rec=False)
    if result.boxes is None:
        return []
    boxes = []
    for quad in np.asarray(result.boxes):
        x0, y0 = quad.min(axis=0)
        x1, y1 = quad.max(axis=0)
        pad = max(BOX_PAD_MIN, int(np.ceil((y1 - y0) * BOX_PAD_FRACTION)))
        box = Box(int(x0) - pad, int(y0) - pad, int(np.ceil(x1)) + pad + 1, int(np.ceil(y1)) + pad + 1)
        clipped = box.clipped(width, height)
        if clipped is not None:
            boxes.append(clipped)
    return boxes


def ocr_frame_indices(total: int, frame: Callable[[int], np.ndarray]) -> list[int]:
    """First, middle, last, and the scene changes (``fusion.video``) among a few probe frames."""
    base = {0, total // 2, total - 1}
    if total <= OCR_MAX_FRAMES:
        return list(range(total))
    from PIL import Image

    from fusion.video import scene_change_frame_indices, uniform_frame_indices

    probe = sorted(set(uniform_frame_indices(total, SCENE_PROBE_FRAMES)))
    picked = scene_change_frame_indices([Image.fromarray(frame(i)) for i in probe], OCR_MAX_FRAMES - 2)
    extra = [probe[i] for i in picked if probe[i] not in base]
    return sorted(base | set(extra[: OCR_MAX_FRAMES - len(base)]))


def plan_masking(
    keep: list[Box], band_rows: int, total: int, frame: Callable[[int], np.ndarray], use_ocr: bool
) -> PixelPlan:
    """The mask for every frame: regions always, plus OCR text boxes from a few frames when asked."""
    plan = PixelPlan(keep=keep, band_rows=band_rows)
    if not use_ocr:
        return plan
    start = time.perf_counter()
    plan.ocr_frames = ocr_frame_indices(total, frame)
    for index in plan.ocr_frames:
        plan.text_boxes.extend(detect_text_boxes(plan.apply(frame(index))))
    plan.ocr_seconds = time.perf_counter() - start
    plan.method = "ocr+regions"
    return plan
