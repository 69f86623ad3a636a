"""Burned-in text: what is masked in every frame an instance writes, and why.

Two layers, whatever the header's BurnedInAnnotation claims: everything outside the ultrasound
regions (the Sequence of Ultrasound Regions, else the detected scan region) and the top band is
blanked; then text the OCR detector finds is masked on every frame, since scanners burn names and
measurements into the scan area too.

Which frames the OCR sees: every frame whose text-like structure changes. A cheap text map (bright
strokes thinner than a glyph, on a small copy of the region-masked frame) is made for every frame;
a frame goes to the OCR when its map has strokes that no frame already sent there has. Speckle and
a beating heart are broad and soft, so they rarely count; a name drawn on one frame always does.

How a frame is checked: the detector runs on the raw frame and on each view that is written (the
masked full frame of a DICOM output, the masked crop of a PNG), because what it finds depends on
the surroundings; then again on the masked views until a pass finds nothing new, so the written
views hold nothing the detector still takes for text. Detector boxes taller than any text line
(a heart wall read as one huge word) are refused: masking them would erase the scan.

The plan is ``checked`` only when every changing frame was OCR'd and every check settled; only then
may the header say BurnedInAnnotation NO with the Clean Pixel Data code. OCR is the ``ocr`` extra
(rapidocr's PP-OCR detector, whose ONNX model ships inside its wheel, so nothing downloads at run
time); without it, region masking alone is done and reported as such.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ultra.dicom.regions import Box, mask_outside

OCR_INSTALL_HINT = "install the ocr extra for burned-in text detection: pip install 'ultra[ocr]'"
OCR_MAX_FRAMES = 8  # frames with new text-like strokes the OCR checks; past it the plan is not `checked`
CHECK_ROUNDS = 3  # detector passes over the masked views before a frame counts as unsettled
BOX_PAD_FRACTION = 0.3  # of the box height, around each detected box: glyph edges, descenders
BOX_PAD_MIN = 2
MAX_TEXT_HEIGHT_FRACTION = 0.2  # of the view's shorter side: a taller detector box is not a text line
MAX_TEXT_HEIGHT_MIN = 24
MASKED_SHARE_IS_OLD = 0.5  # a detector box at least this much over masks already made adds nothing
DETECT_MIN_SIDE = 736  # px the detector's input has on its shorter side, at least (small views grow)
DETECT_MAX_SIDE = 2000  # px: a view with a longer side is shrunk to it first (RapidOCR's max_side_len)
_DETECT_GRID = 32  # the detector network's input sides are multiples of this
TEXT_MAP_SIDE = 320  # the small copy the text map is made on
TEXT_MAP_STROKE = 5  # px on the small copy: the opening that keeps everything but thin strokes
TEXT_MAP_CONTRAST = 0.3  # a stroke is this much brighter (0..1) than what the opening leaves
TEXT_CHANGE_MIN_PIXELS = 12  # new stroke pixels on the small copy that send a frame to the OCR


@dataclass
class PixelPlan:
    """What to blank in every frame of one instance (frame coordinates) and how it was decided."""

    keep: list[Box]
    band_rows: int
    text_boxes: list[Box] = field(default_factory=list)
    method: str = "regions"
    ocr_frames: list[int] = field(default_factory=list)
    ocr_seconds: float = 0.0
    checked: bool = False  # every frame with new text-like strokes was OCR'd and settled
    refused_boxes: int = 0  # detector boxes too tall to be text, left unmasked
    scan_loss: float = 0.0  # the largest share of a written frame's scan blanked outside text boxes

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
        return {
            "method": self.method,
            "text_boxes": len(self.text_boxes),
            "ocr_frames": self.ocr_frames,
            "checked": self.checked,
            "refused_boxes": self.refused_boxes,
            "scan_loss": round(self.scan_loss, 4),
        }

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
def process_detector(threads: int | None = None) -> TextDetector:
    """This process's detector with ``threads`` ONNX threads (None: every usable core), built once
    per process: a batch worker reuses it for every file it is given."""
    return TextDetector(threads)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def detector_threads(workers: int = 1) -> int:
    """ONNX Runtime threads for each of ``workers`` processes sharing this machine's cores: one
    thread per core in all, so parallel workers do not oversubscribe the CPU."""
    return max(1, usable_cores() // max(1, workers))


class TextDetector:
    """RapidOCR's PP-OCR text detector, loaded on first use and reused for every frame after.

    Loading the ONNX session costs far more than a frame, so one detector serves a whole process:
    build it once and pass it to :func:`plan_masking`, with ``threads`` set to the cores this
    process may use (:func:`detector_threads`). Its input size is RapidOCR's own rule, stated
    here: a view longer than ``max_side`` is shrunk to it, then its shorter side is brought up to
    ``min_side``. Masking needs that growth: at the view's own size 5 of
    ``benchmarks.dicom_masking``'s 30 planted cases stay readable, 1 at a uniform 1.6x or with a
    624x230 crop held to 1280 px, and 13 px Chinese on the fuzz runs' 192x144 frames is missed
    below 4x; any other resize of the same views (padding, a different rounding) let a planted
    case through, so the views reach the network exactly as RapidOCR sizes them.
    """

    def __init__(
        self, threads: int | None = None, min_side: int = DETECT_MIN_SIDE, max_side: int = DETECT_MAX_SIDE
    ) -> None:
        if not _DETECT_GRID <= min_side <= max_side:
            raise ValueError(f"detector sides must satisfy {_DETECT_GRID} <= min_side <= max_side")
        self.threads = threads if threads is not None else detector_threads()
        self.min_side, self.max_side = min_side, max_side
        self._engine = None

    @property
    def engine(self):
        """The RapidOCR object (built on first use: importing and loading it takes a second)."""
        if self._engine is None:
            from rapidocr import RapidOCR

            self._engine = RapidOCR(
                params={
                    "Global.log_level": "critical",
                    "Global.max_side_len": self.max_side,
                    "Det.limit_type": "min",
                    "Det.limit_side_len": self.min_side,
                    "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                    "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                }
            )
        return self._engine

    def input_scale(self, width: int, height: int) -> float:
        """The factor a ``width`` x ``height`` view is resized by before detection."""
        shrink = min(1.0, self.max_side / max(width, height, 1))  # Global.max_side_len, first
        short = max(1, round(min(width, height) * shrink))
        return shrink * max(1.0, self.min_side / short)

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) the detector network sees for a view of this size: RapidOCR's own
        resize, as this detector's config sets it (sides on the 32 px grid)."""
        factor = self.input_scale(width, height)
        return _on_grid(int(width * factor)), _on_grid(int(height * factor))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Text quads (n x 4 x 2, float32) in ``rgb``'s pixel coordinates."""
        result = self.engine(np.ascontiguousarray(rgb), use_det=True, use_cls=False, use_rec=False)
        if result.boxes is None or len(result.boxes) == 0:
            return np.zeros((0, 4, 2), dtype=np.float32)
        return np.asarray(result.boxes, dtype=np.float32)


def _on_grid(side: int) -> int:
    """RapidOCR's rounding of a side to the network's grid (at least one cell)."""
    return max(_DETECT_GRID, int(round(side / _DETECT_GRID) * _DETECT_GRID))


def max_text_height(width: int, height: int) -> int:
    """The tallest detector box taken for a line of text in a view of this size."""
    return max(MAX_TEXT_HEIGHT_MIN, round(MAX_TEXT_HEIGHT_FRACTION * min(width, height)))


def detect_text_boxes(rgb: np.ndarray, detector: TextDetector) -> tuple[list[Box], int]:
    """Boxes of text the OCR detector finds in one image, padded, and how many it refused.

    Detection alone (no recognition): every text-like area is masked, legible or not. A box whose
    short side (the line height, on a tilted box too) exceeds :func:`max_text_height` is refused.
    """
    import cv2

    height, width = rgb.shape[:2]
    quads = detector(np.ascontiguousarray(rgb))
    tallest = max_text_height(width, height)
    boxes, refused = [], 0
    for quad in quads:
        if min(cv2.minAreaRect(quad)[1]) > tallest:
            refused += 1
            continue
        x0, y0 = quad.min(axis=0)
        x1, y1 = quad.max(axis=0)
        pad = max(BOX_PAD_MIN, int(np.ceil((y1 - y0) * BOX_PAD_FRACTION)))
        box = Box(int(x0) - pad, int(y0) - pad, int(np.ceil(x1)) + pad + 1, int(np.ceil(y1)) + pad + 1)
        clipped = box.clipped(width, height)
        if clipped is not None:
            boxes.append(clipped)
    return boxes, refused


def text_map(rgb: np.ndarray) -> np.ndarray:
    """Bright strokes thinner than a glyph (a white top-hat) on a copy at most TEXT_MAP_SIDE wide."""
    import cv2

    gray = rgb.max(axis=2) if rgb.ndim == 3 else rgb
    scale = min(1.0, TEXT_MAP_SIDE / max(gray.shape))
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (TEXT_MAP_STROKE, TEXT_MAP_STROKE))
    strokes = cv2.morphologyEx(gray.astype(np.float32) / 255.0, cv2.MORPH_TOPHAT, kernel)
    return strokes > TEXT_MAP_CONTRAST


def text_change_frames(
    total: int, frame: Callable[[int], np.ndarray], plan: PixelPlan
) -> list[tuple[int, int]]:
    """Frames whose text map has strokes no earlier picked frame has, with that count (frame 0: all).

    Maps are made on the region-masked frame, so what masking removes anyway never counts.
    """
    import cv2

    picked: list[tuple[int, int]] = []
    seen: np.ndarray | None = None
    kernel = np.ones((3, 3), np.uint8)
    for index in range(total):
        strokes = text_map(plan.apply(frame(index)))
        if seen is None:
            picked.append((index, int(strokes.sum())))
            seen = strokes
            continue
        new = int((strokes & ~cv2.dilate(seen.astype(np.uint8), kernel).astype(bool)).sum())
        if new >= TEXT_CHANGE_MIN_PIXELS:
            picked.append((index, new))
            seen = seen | strokes
    return picked


def _masked_share(box: Box, boxes: list[Box]) -> float:
    """How much of ``box`` the ``boxes`` already cover (0..1)."""
    covered = np.zeros((box.y1 - box.y0, box.x1 - box.x0), dtype=bool)
    for b in boxes:
        x0, y0, x1, y1 = max(b.x0, box.x0), max(b.y0, box.y0), min(b.x1, box.x1), min(b.y1, box.y1)
        if x1 > x0 and y1 > y0:
            covered[y0 - box.y0 : y1 - box.y0, x0 - box.x0 : x1 - box.x0] = True
    return float(covered.mean()) if covered.size else 1.0


def _new_boxes(found: list[Box], boxes: list[Box]) -> list[Box]:
    """Boxes not mostly over a mask already made: a black box in speckle looks like a word to the
    detector, and taking that for text would grow the masks pass after pass."""
    return [box for box in found if _masked_share(box, boxes) < MASKED_SHARE_IS_OLD]


def _views_boxes(image: np.ndarray, views: list[Box], detector: TextDetector) -> tuple[list[Box], int]:
    """Detector boxes over each view (a crop of ``image``), in frame coordinates."""
    found, refused = [], 0
    for view in views:
        crop = image[view.y0 : view.y1, view.x0 : view.x1]
        boxes, refused_here = detect_text_boxes(crop, detector)
        refused += refused_here
        found.extend(Box(b.x0 + view.x0, b.y0 + view.y0, b.x1 + view.x0, b.y1 + view.y0) for b in boxes)
    return found, refused


def _filled(masked: np.ndarray, plan: PixelPlan) -> np.ndarray:
    """The masked frame with its text boxes inside the scan filled from their surroundings, for the
    detector only: a black box in speckle reads as a word to it, and taking that for text would
    grow the masks pass after pass, while what is left of a glyph beside a box still shows."""
    import cv2

    holes = np.zeros(masked.shape[:2], dtype=np.uint8)
    for box in plan.text_boxes:
        holes[box.y0 : box.y1, box.x0 : box.x1] = 1
    holes &= mask_outside(np.ones_like(holes), plan.keep, plan.band_rows)
    if not holes.any():
        return masked
    return cv2.inpaint(np.ascontiguousarray(masked), holes, 3, cv2.INPAINT_TELEA)


def check_frame(rgb: np.ndarray, plan: PixelPlan, views: list[Box], detector: TextDetector) -> bool:
    """Add the text boxes of one frame to ``plan``; True when a last pass over the views found none new."""
    height, width = rgb.shape[:2]
    raw, refused = _views_boxes(rgb, [Box(0, 0, width, height)], detector)
    plan.refused_boxes += refused
    plan.text_boxes.extend(_new_boxes(raw, plan.text_boxes))
    for _ in range(CHECK_ROUNDS):
        found, refused = _views_boxes(_filled(plan.apply(rgb), plan), views, detector)
        plan.refused_boxes += refused
        new = _new_boxes(found, plan.text_boxes)
        if not new:
            return True
        plan.text_boxes.extend(new)
    return False


def plan_masking(
    keep: list[Box],
    band_rows: int,
    total: int,
    frame: Callable[[int], np.ndarray],
    use_ocr: bool,
    views: list[Box] | None = None,
    detector: TextDetector | None = None,
) -> PixelPlan:
    """The mask for every frame: regions always, plus OCR text boxes when asked.

    ``views`` are the parts of a frame that are written (frame coordinates); default the whole frame.
    ``detector`` is the process's :class:`TextDetector`; without one, :func:`process_detector`'s.
    """
    plan = PixelPlan(keep=keep, band_rows=band_rows)
    if not use_ocr:
        return plan
    start = time.perf_counter()
    if views is None:
        height, width = frame(0).shape[:2]
        views = [Box(0, 0, width, height)]
    changes = text_change_frames(total, frame, plan)
    first, rest = changes[0], sorted(changes[1:], key=lambda change: -change[1])
    chosen = sorted([first[0]] + [index for index, _ in rest[: OCR_MAX_FRAMES - 1]])
    detector = detector if detector is not None else process_detector()
    settled = [check_frame(frame(index), plan, views, detector) for index in chosen]
    plan.ocr_frames = chosen
    plan.checked = all(settled) and len(changes) <= OCR_MAX_FRAMES
    plan.ocr_seconds = time.perf_counter() - start
    plan.method = "ocr+regions"
    return plan
