"""Where the ultrasound image is inside a frame: the DICOM Sequence of Ultrasound Regions when the
file has one, else ``fusion.ultrasound``'s detector; and masking of everything outside it
(:mod:`ultra.dicom.burned_in` decides what to mask, whatever the header claims)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom import Dataset

HEADER_BAND_FRACTION = 0.08
DETECT_MAX_SIDE = 320
MAX_SCAN_LOSS = 0.05  # of the scan area an output may blank outside text boxes
_TISSUE_DATA_TYPES = (1, 2, 3, 4, 5)  # tissue, colour flow, PW/CW spectral, (0018,6014)


@dataclass(frozen=True)
class Box:
    """A pixel rectangle, half-open: columns x0..x1-1, rows y0..y1-1."""

    x0: int
    y0: int
    x1: int
    y1: int

    def clipped(self, width: int, height: int) -> Box | None:
        box = Box(max(0, self.x0), max(0, self.y0), min(width, self.x1), min(height, self.y1))
        return box if box.x1 > box.x0 and box.y1 > box.y0 else None


def ultrasound_regions(ds: Dataset, width: int, height: int) -> list[Box]:
    """Image regions of (0018,6011) Sequence of Ultrasound Regions, clipped to the frame."""
    boxes: list[Box] = []
    for item in ds.get("SequenceOfUltrasoundRegions", None) or []:
        try:
            data_type = int(item.get("RegionDataType", 1))
            box = Box(
                int(item.RegionLocationMinX0),
                int(item.RegionLocationMinY0),
                int(item.RegionLocationMaxX1) + 1,
                int(item.RegionLocationMaxY1) + 1,
            )
        except (AttributeError, TypeError, ValueError):
            continue
        clipped = box.clipped(width, height)
        if clipped is not None and data_type in _TISSUE_DATA_TYPES:
            boxes.append(clipped)
    return boxes


def union_box(boxes: list[Box]) -> Box:
    return Box(
        min(b.x0 for b in boxes), min(b.y0 for b in boxes), max(b.x1 for b in boxes), max(b.y1 for b in boxes)
    )


def scan_box(ds: Dataset, rgb: np.ndarray) -> tuple[Box, str]:
    """The crop box of a frame and where it came from ("regions" or "detected")."""
    height, width = rgb.shape[:2]
    boxes = ultrasound_regions(ds, width, height)
    if boxes:
        return union_box(boxes), "regions"
    from fusion.ultrasound import find_scan_region

    # Detection on a subsampled copy: the box moves by at most `step` pixels, the cost drops ~step².
    step = max(1, -(-max(height, width) // DETECT_MAX_SIDE))
    found = find_scan_region(rgb[::step, ::step])
    box = Box(found.x0 * step, found.y0 * step, found.x1 * step, found.y1 * step).clipped(width, height)
    return (box or Box(0, 0, width, height)), "detected"


def header_band_rows(frame_height: int, fraction: float = HEADER_BAND_FRACTION) -> int:
    """Rows at the top of a frame where scanners burn in patient names and dates."""
    return int(round(frame_height * fraction))


def mask_outside(
    rgb: np.ndarray, keep: list[Box], band_rows: int, origin: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Black out everything outside ``keep`` and the top ``band_rows`` rows of the frame.

    ``rgb`` may be a crop whose top-left corner sits at ``origin`` (x, y) in the frame; ``keep`` and
    ``band_rows`` are in frame coordinates, so masking after cropping equals cropping after masking.
    """
    height, width = rgb.shape[:2]
    ox, oy = origin
    out = np.zeros_like(rgb)
    for box in keep:
        x0, y0 = max(box.x0 - ox, 0), max(box.y0 - oy, 0)
        x1, y1 = min(box.x1 - ox, width), min(box.y1 - oy, height)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = rgb[y0:y1, x0:x1]
    if band_rows > oy:
        out[: band_rows - oy] = 0
    return out


def _inside(boxes: list[Box], shape: tuple[int, int], step: int) -> np.ndarray:
    """A boolean map (on a grid subsampled by ``step``) of the pixels inside any of ``boxes``."""
    out = np.zeros(shape, dtype=bool)
    for box in boxes:
        out[-(-box.y0 // step) : -(-box.y1 // step), -(-box.x0 // step) : -(-box.x1 // step)] = True
    return out


def scan_pixels(rgb: np.ndarray, step: int = 1, within: list[Box] | None = None) -> np.ndarray:
    """The scan's pixels (every ``step``-th): the largest connected area of ``fusion.ultrasound``'s
    scan signal (speckle or vivid colour, not flat panels or the black margin) inside ``within``,
    small gaps closed. Independent of the crop box and the masks, so it can judge them."""
    from scipy import ndimage

    from fusion.ultrasound import scan_signal

    signal = scan_signal(rgb[::step, ::step])
    if within:
        signal &= _inside(within, signal.shape, step)
    signal = ndimage.binary_closing(signal, np.ones((3, 3), bool), border_value=0)
    labels, count = ndimage.label(signal, structure=np.ones((3, 3), bool))
    if count == 0:
        return signal
    sizes = np.bincount(labels.ravel())[1:]
    return labels == 1 + int(np.argmax(sizes))


def scan_area_loss(
    rgb: np.ndarray,
    keep: list[Box],
    band_rows: int,
    crop: Box,
    text_boxes: list[Box],
    within: list[Box] | None = None,
) -> float:
    """Share of a frame's scan pixels an output blanks or crops away outside ``text_boxes``.

    The scan is :func:`scan_pixels`, restricted to ``within`` (the scan region: the header's
    ultrasound regions or the detected box) when given; an output keeps what lies inside ``crop``
    and ``keep`` and below the top band.
    """
    height, width = rgb.shape[:2]
    step = max(1, -(-max(height, width) // DETECT_MAX_SIDE))
    scan = scan_pixels(rgb, step, within)
    total = int(scan.sum())
    if total == 0:
        return 0.0
    kept = _inside(keep, scan.shape, step) & _inside([crop], scan.shape, step)
    kept[: -(-band_rows // step)] = False
    lost = scan & ~kept & ~_inside(text_boxes, scan.shape, step)
    return float(lost.sum()) / total
