"""Ultrasound-aware preprocessing: 3 channels, crop to the scan region, optional denoise.

Scanner screenshots and DICOM frames carry black margins, burned-in text (patient, probe,
depth) and colour bars around the scan. Encoders should spend their tokens on the scan itself,
so ``find_scan_region`` locates it and ``crop_scan_region`` returns the crop with its box (the
demo draws the box so a reader can see what the model looked at).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from skimage import measure, restoration

from fusion.pixels import to_rgb

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanBox:
    """Pixel box of the scan region; ``x1``/``y1`` are exclusive, as in PIL's ``crop``."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1


def _gray_and_chroma(image: np.ndarray | Image.Image) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(to_rgb(image), dtype=np.float32) / 255.0
    # Max over channels, not luma: colour Doppler and colour bars count as signal.
    high = array.max(axis=2)
    return high, high - array.min(axis=2)


def _morph(operation: int, mask: np.ndarray, radius: int) -> np.ndarray:
    """A binary morphology step (OpenCV, disk-shaped) on a zero-padded copy, so the frame's
    edges behave like the black margin around it."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    pad = radius + 1
    padded = np.pad(mask.astype(np.uint8), pad)
    result = cv2.morphologyEx(padded, operation, kernel)
    return result[pad:-pad, pad:-pad].astype(bool)


def _short_side(bbox: tuple[int, int, int, int]) -> int:
    return min(bbox[2] - bbox[0], bbox[3] - bbox[1])


def scan_signal(
    image: np.ndarray | Image.Image,
    threshold: float = 0.05,
    flat_tolerance: float = 0.01,
    vivid_chroma: float = 0.5,
) -> np.ndarray:
    """Pixels that may be scan: above ``threshold`` (channel max) and either not flat (local 5×5
    std above ``flat_tolerance``) or a vivid colour (max − min channel at least ``vivid_chroma``)."""
    gray, chroma = _gray_and_chroma(image)
    mean = ndimage.uniform_filter(gray, size=5)
    spread = np.sqrt(np.clip(ndimage.uniform_filter(gray * gray, size=5) - mean * mean, 0.0, None))
    return (gray > threshold) & ((spread > flat_tolerance) | (chroma >= vivid_chroma))


def find_scan_region(
    image: np.ndarray | Image.Image,
    threshold: float = 0.05,
    text_size: int | None = None,
    flat_tolerance: float = 0.01,
    min_part: float = 0.2,
    vivid_chroma: float = 0.5,
) -> ScanBox:
    """Box of the scan region, leaving out black margins, text and flat panels around it.

    Steps: grayscale (channel max, so colour Doppler counts) → pixels above ``threshold`` that
    are not flat (local 5×5 std above ``flat_tolerance``: speckle is never flat, while header
    bars and info panels are a uniform colour) or are a vivid colour (max − min channel at least
    ``vivid_chroma``: saturated colour flow is flat too, and a panel is grey or dark) → a small
    closing (speckle joins up) → an opening
    with a disk of diameter ``text_size`` (erases characters, text lines, calliper marks and the
    thin edge where a grey background meets a black margin, all narrower than that) → hole
    filling (dark fluid inside the scan) → the bounding box of the largest connected component
    and of any other at least ``min_part`` times its area and ``3 * text_size`` px on its short
    side (a dual view's two panels, or a fan cut in pieces by dark chambers, stay whole; a
    status bar does not join). An opening keeps a rectangle's box exactly; a fan's apex, narrower
    than the disk, loses a few pixels. ``text_size`` defaults to 1/30 of the shorter side; text
    must sit a few pixels from the scan to be left out, and narrow colour bars glued to the
    scan's side stay in. Returns the whole frame when nothing is above threshold.
    """
    raw = scan_signal(image, threshold, flat_tolerance, vivid_chroma)
    height, width = raw.shape
    if text_size is None:
        text_size = max(4, round(min(height, width) / 30))
    open_radius = max(2, text_size // 2)
    mask = _morph(cv2.MORPH_CLOSE, raw, max(1, open_radius // 3))
    mask = _morph(cv2.MORPH_OPEN, mask, open_radius)
    mask = ndimage.binary_fill_holes(mask)
    labels = measure.label(mask, connectivity=2)
    if labels.max() == 0:
        logger.debug("no region above threshold %.3f survives; using the whole frame", threshold)
        return ScanBox(0, 0, width, height)
    regions = measure.regionprops(labels)
    largest = max(region.area for region in regions)
    boxes = np.array(
        [
            region.bbox
            for region in regions
            if region.area == largest
            or (region.area >= min_part * largest and _short_side(region.bbox) >= 3 * text_size)
        ]
    )
    y0, x0 = boxes[:, 0].min(), boxes[:, 1].min()
    y1, x1 = boxes[:, 2].max(), boxes[:, 3].max()
    return ScanBox(int(x0), int(y0), int(x1), int(y1))


def crop_scan_region(
    image: np.ndarray | Image.Image, **kwargs: float | int | None
) -> tuple[Image.Image, ScanBox]:
    """The scan region as an RGB image, and the box it was cut from."""
    rgb = to_rgb(image)
    box = find_scan_region(rgb, **kwargs)
    return rgb.crop(box.as_tuple()), box


def denoise_speckle(image: Image.Image, strength: float = 0.6) -> Image.Image:
    """Non-local means with a filter strength below the noise estimate, so speckle texture
    (which carries tissue information) is softened rather than erased."""
    array = np.asarray(to_rgb(image), dtype=np.float32) / 255.0
    sigma = float(np.mean(restoration.estimate_sigma(array, channel_axis=-1)))
    if sigma <= 0:
        return to_rgb(image)
    result = restoration.denoise_nl_means(
        array,
        h=strength * sigma,
        sigma=sigma,
        patch_size=5,
        patch_distance=6,
        fast_mode=True,
        channel_axis=-1,
    )
    return to_rgb(np.clip(result, 0.0, 1.0))


def prepare_ultrasound(
    image: np.ndarray | Image.Image, crop: bool = True, denoise: bool = False
) -> tuple[Image.Image, ScanBox]:
    """The model's view of an ultrasound frame: 3 channels, scan region, optionally denoised."""
    rgb = to_rgb(image)
    if crop:
        rgb, box = crop_scan_region(rgb)
    else:
        box = ScanBox(0, 0, rgb.width, rgb.height)
    if denoise:
        rgb = denoise_speckle(rgb)
    return rgb, box


def draw_scan_box(image: np.ndarray | Image.Image, box: ScanBox, colour: str = "#00ff66") -> Image.Image:
    """A copy of the frame with the box outlined, for the demo and reports."""
    rgb = to_rgb(image).copy()
    line = max(1, round(min(rgb.size) / 200))
    ImageDraw.Draw(rgb).rectangle((box.x0, box.y0, box.x1 - 1, box.y1 - 1), outline=colour, width=line)
    return rgb
