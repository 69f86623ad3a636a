"""Pixel arrays to 8-bit RGB: the one scaling rule for arrays, wide-integer images and DICOM."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ultra.media.errors import MediaError

# Pillow modes whose values do not fit 8 bits; their convert("RGB") would clip, not scale.
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def to_uint8(arr: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``[low, high]`` linearly onto 0..255 (rounded, clipped); a flat range maps to 0."""
    scaled = (arr.astype(np.float64) - low) / max(high - low, 1e-9)
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def _channels_last(arr: np.ndarray, source_id: str) -> np.ndarray:
    if arr.ndim == 2:
        return arr[..., None]
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        return arr
    raise MediaError(source_id, f"array of shape {arr.shape} is not HxW, HxWx1, HxWx3 or HxWx4")


def _scaled(arr: np.ndarray, source_id: str) -> np.ndarray:
    """uint8 as is; bool as 0/255; floats in [0, 1] times 255; anything else stretched min to max
    (as a DICOM without a window is), since its intended range is not known."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind not in "iuf":
        raise MediaError(source_id, f"array of dtype {arr.dtype} is not numeric")
    if arr.size == 0:
        raise MediaError(source_id, f"empty array of shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise MediaError(source_id, "array holds NaN or infinite values")
    low, high = float(arr.min()), float(arr.max())
    if arr.dtype.kind == "f" and low >= 0.0 and high <= 1.0:
        return to_uint8(arr, 0.0, 1.0)
    return to_uint8(arr, low, high)


def array_to_rgb(arr: np.ndarray, source_id: str = "array") -> Image.Image:
    """An RGB image from an HxW, HxWx1, HxWx3 or HxWx4 array (alpha dropped), any numeric dtype."""
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    rgb = _channels_last(_scaled(np.asarray(arr), source_id), source_id)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")


def pil_to_rgb(image: Image.Image, source_id: str = "PIL image") -> Image.Image:
    """An RGB copy of a Pillow image; 16-bit and float modes are scaled, not clipped at 255."""
    if image.mode in WIDE_MODES:
        return array_to_rgb(np.asarray(image), source_id)
    return image.convert("RGB")
