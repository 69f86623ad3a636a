"""The one pixel policy: arrays, Pillow images, image files and video frames to 8-bit RGB.

Every package reads pixels through here (``ultra.media`` wraps it for paths, bytes, ``data:`` URLs
and DICOM), so one image gives the model, the screener, the cropper and the training data the
same pixels. The rules:

- ``uint8`` as is; ``bool`` as 0/255; floats within [0, 1] times 255; any other numeric array
  (16-bit, signed, floats outside [0, 1]) stretched from its minimum to its maximum, as a DICOM
  without a window is, since its intended range is not known; a flat one maps to 0. Values are
  rounded half to even. NaN, infinities, empty and non-numeric arrays are refused.
- ``HxW`` and ``HxWx1`` are grey (repeated to three channels), ``HxWx3`` is RGB, ``HxWx4`` RGBA
  whose alpha is dropped before scaling (transparency never changes a colour).
- Pillow images turn upright by their EXIF orientation (as a browser or the demo shows them);
  16-bit, 32-bit and float modes are scaled by the array rule, not clipped at 255; every other
  mode (palette, grey + alpha, RGBA, CMYK, YCbCr, 1-bit) is Pillow's own conversion to RGB.

Errors are ``PixelError``: one line, ``"<source id>: <reason>"``, the source named by the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
"""Pillow modes whose values do not fit 8 bits; their ``convert("RGB")`` would clip, not scale."""

PixelSource = np.ndarray | Image.Image


class PixelError(ValueError):
    """Pixels that cannot become RGB; the message is ``"<source id>: <reason>"`` on one line."""

    def __init__(self, source_id: str, reason: str) -> None:
        reason = " ".join(str(reason).split())
        super().__init__(f"{source_id}: {reason}")
        self.source_id = source_id
        self.reason = reason


_BAND_VALUES = 1 << 18  # values converted at a time: a few 2 MB float64 bands of work space


def to_uint8(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``[low, high]`` linearly onto 0..255 (rounded, clipped); a flat range maps to 0.

    8- and 16-bit integers go through a table of every value they can hold (the same values, one
    lookup per pixel); anything else is converted a band at a time, so a 64-megapixel frame never
    needs 512 MB float64 copies."""
    if array.dtype.kind in "ui" and array.dtype.itemsize <= 2:
        unsigned = np.dtype(f"u{array.dtype.itemsize}")
        every = np.arange(2 ** (8 * array.dtype.itemsize), dtype=unsigned).view(array.dtype)
        return _scaled_bands(every, low, high)[array.view(unsigned)]
    return _scaled_bands(array, low, high)


def voi_output_range(dataset: Any) -> tuple[float, float] | None:
    """The value range pydicom's ``apply_voi_lut`` maps a DICOM dataset onto (PS3.3 C.11.2), or
    None when it defines no VOI LUT or window; ``to_uint8`` over it shows the window as a viewer does.

    Read from the dataset's attributes only, so this module needs no pydicom."""
    if dataset.get("VOILUTSequence"):
        return 0.0, float(2 ** int(dataset.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    if "WindowCenter" not in dataset or "WindowWidth" not in dataset:
        return None
    bits = int(dataset.BitsStored)
    if dataset.get("ModalityLUTSequence"):
        low, high = 0.0, float(2 ** int(dataset.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(dataset.get("PixelRepresentation", 0)) == 0:
        low, high = 0.0, float(2**bits - 1)
    else:
        low, high = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = dataset.get("RescaleSlope"), dataset.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        low, high = low * float(slope) + float(intercept), high * float(slope) + float(intercept)
    return low, high


def _scaled_bands(array: np.ndarray, low: float, high: float) -> np.ndarray:
    span = max(high - low, 1e-9)
    flat = np.ascontiguousarray(array).reshape(-1)
    out = np.empty(flat.shape, dtype=np.uint8)
    for start in range(0, flat.size, _BAND_VALUES):
        scaled = (flat[start : start + _BAND_VALUES].astype(np.float64) - low) / span
        out[start : start + _BAND_VALUES] = np.clip(np.rint(scaled * 255.0), 0, 255)
    return out.reshape(array.shape)


def _scaled(array: np.ndarray, source_id: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype.kind not in "iuf":
        raise PixelError(source_id, f"array of dtype {array.dtype} is not numeric")
    if array.size == 0:
        raise PixelError(source_id, f"empty array of shape {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise PixelError(source_id, "array holds NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if array.dtype.kind == "f" and low >= 0.0 and high <= 1.0:
        return to_uint8(array, 0.0, 1.0)
    return to_uint8(array, low, high)


def _array_rgb(array: np.ndarray, source_id: str) -> np.ndarray:
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))):
        raise PixelError(source_id, f"array of shape {array.shape} is not HxW, HxWx1, HxWx3 or HxWx4")
    scaled = _scaled(array[..., :3] if array.ndim == 3 else array, source_id)
    if scaled.ndim == 2:
        scaled = scaled[..., None]
    if scaled.shape[2] == 1:
        scaled = np.repeat(scaled, 3, axis=2)
    return np.ascontiguousarray(scaled)


def _pil_rgb(image: Image.Image, source_id: str) -> Image.Image:
    try:
        upright = image
        if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
            upright = ImageOps.exif_transpose(image)
        if upright.mode in WIDE_MODES:
            return Image.fromarray(_array_rgb(np.asarray(upright), source_id), mode="RGB")
        return upright.convert("RGB")
    except PixelError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise PixelError(source_id, unreadable_reason(error)) from None


def to_rgb(image: PixelSource, source_id: str = "image") -> Image.Image:
    """An RGB Pillow image from a Pillow image or an ``HxW`` / ``HxWx{1,3,4}`` numeric array.

    ``source_id`` names the input in errors (a path, ``"image 3"``); a Pillow image is never
    changed in place (the result is a new image, even when it already was RGB).
    """
    if isinstance(image, Image.Image):
        return _pil_rgb(image, source_id)
    if isinstance(image, np.ndarray):
        return Image.fromarray(_array_rgb(image, source_id), mode="RGB")
    raise TypeError(f"{source_id}: expected a PIL image or a numpy array, got {type(image).__name__}")


def rgb_array(image: PixelSource, source_id: str = "image") -> np.ndarray:
    """``to_rgb`` as an ``HxWx3`` ``uint8`` array."""
    return np.asarray(to_rgb(image, source_id))


def video_frame_to_rgb(frame: np.ndarray, source_id: str = "frame") -> Image.Image:
    """A frame as OpenCV decodes it (BGR, BGRA or grey) through the same rule as any array."""
    if frame.ndim == 3 and frame.shape[2] in (3, 4):
        frame = frame[..., 2::-1]
    return to_rgb(frame, source_id)


def unreadable_reason(error: BaseException) -> str:
    """Why Pillow could not open or decode a file, in the words every reader uses."""
    if isinstance(error, FileNotFoundError):
        return "file not found"
    if isinstance(error, IsADirectoryError):
        return "is a folder, not an image (a video's frames? read it as a video)"
    if isinstance(error, UnidentifiedImageError):
        return "not a readable image (unknown format)"
    if isinstance(error, Image.DecompressionBombError):
        return f"image too large to decode safely ({error})"
    return f"not a readable image ({type(error).__name__}: {error})"


def read_image_file(path: str | Path, source_id: str | None = None) -> Image.Image:
    """An image file (anything Pillow reads; the first frame of a multi-page one) as RGB.

    Opened, decoded and converted once, inside one error boundary: a missing, truncated or
    unknown file is a ``PixelError`` naming ``source_id`` (default: the path as given).
    DICOM and size budgets are ``ultra.media``'s job; this reader serves the lower packages.
    """
    name = str(path) if source_id is None else source_id
    try:
        with Image.open(path) as image:
            return _pil_rgb(image, name)
    except PixelError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise PixelError(name, unreadable_reason(error)) from None
