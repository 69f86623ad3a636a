"""Encoded images (PNG, JPEG, BMP, TIFF, anything Pillow reads) to RGB, size-checked from the header.

``Image.open`` parses only the header, so width x height are compared with ``MediaLimits`` before
any pixel is decoded; Pillow's own bomb check (``DecompressionBombError``) becomes a MediaError.

With ``max_side`` an image is made small as it is read: a JPEG decodes at a reduced scale (draft
mode), anything else is shrunk right after decoding, band by band, so the peak is about one
full-size image and only the small copy stays. A ``DecodeAccount`` holds the full size while
decoding and the small copy's size afterwards.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import ExifTags, Image, UnidentifiedImageError

from fusion.pixels import WIDE_MODES
from ultra.media.errors import MediaError
from ultra.media.limits import DEFAULT_LIMITS, DecodeAccount, MediaLimits
from ultra.media.pixels import to_rgb

# Pillow's storage per pixel: one byte for 1/L/P, two for 16-bit, four for everything else (RGB too).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
_REDUCING_GAP = 3.0  # reduce by whole factors first, then resample the last ≤3x with the filter


@contextmanager
def open_checked(
    source: Path | bytes, source_id: str, frame: int = 0, limits: MediaLimits = DEFAULT_LIMITS
) -> Iterator[Image.Image]:
    """The image opened lazily at frame ``frame`` (multi-page TIFF, GIF), its size already checked
    against ``limits``; any failure while it is open, decoding included, becomes a MediaError."""
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(handle) as image:
            total = int(getattr(image, "n_frames", 1))
            if not 0 <= frame < total:
                raise MediaError(source_id, f"frame {frame} out of range (the image has {total} frame(s))")
            if frame:
                image.seek(frame)
            limits.check_image(source_id, image.width, image.height)
            yield image
    except MediaError:
        raise
    except FileNotFoundError:
        raise MediaError(source_id, "file not found") from None
    except IsADirectoryError:
        raise MediaError(
            source_id, "is a folder, not an image (a video's frames? read it as a video)"
        ) from None
    except UnidentifiedImageError:
        raise MediaError(source_id, "not a readable image (unknown format)") from None
    except Image.DecompressionBombError as error:
        raise MediaError(source_id, f"image too large to decode safely ({error})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise MediaError(source_id, f"not a readable image ({type(error).__name__}: {error})") from None


def decoded_bytes(mode: str, width: int, height: int) -> int:
    """Bytes Pillow holds for a ``width x height`` image of ``mode``."""
    return width * height * _BYTES_PER_PIXEL.get(mode, 4)


def fitted_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """``width x height`` scaled, aspect kept, so the longer side is at most ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrink(image: Image.Image, max_side: int | None) -> Image.Image:
    """The image with its longer side at most ``max_side`` (itself when already that small).

    Bands are resized one at a time (a band is a quarter of an RGB image's memory, and no
    premultiplied copy is made: alpha is dropped by the RGB policy anyway). Palette and bilevel
    images become RGB / L first (their resize would be nearest-neighbour); 16-bit and float images
    use a box filter, which keeps values inside their range for the min-max scaling after.
    """
    if max_side is None or max(image.size) <= max_side:
        return image
    size = fitted_size(*image.size, max_side)
    if image.mode in ("1", "P", "PA"):
        image = image.convert("L" if image.mode == "1" else "RGB")
    resample = Image.Resampling.BOX if image.mode in WIDE_MODES else Image.Resampling.LANCZOS
    if len(image.getbands()) == 1:
        return image.resize(size, resample, reducing_gap=_REDUCING_GAP)
    bands = [
        image.getchannel(index).resize(size, resample, reducing_gap=_REDUCING_GAP)
        for index in range(len(image.getbands()))
    ]
    return Image.merge(image.mode, bands)


def shrink_cost(mode: str, width: int, height: int, max_side: int | None) -> int:
    """Bytes ``shrink`` needs beside the full image: one 8-bit band (an RGB copy first for palettes)."""
    if max_side is None or max(width, height) <= max_side:
        return 0
    if mode in ("P", "PA"):
        return decoded_bytes("RGB", width, height) + width * height
    if mode == "1" or Image.getmodebands(mode) > 1:
        return width * height
    return 0


def decode_image(
    source: Path | bytes,
    source_id: str,
    frame: int = 0,
    limits: MediaLimits = DEFAULT_LIMITS,
    *,
    max_side: int | None = None,
    account: DecodeAccount | None = None,
) -> Image.Image:
    """Frame ``frame`` of an encoded image as RGB, its longer side at most ``max_side`` when given;
    MediaError if unreadable or over ``limits``, DecodeBudgetError if over ``account``."""
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    held = 0
    try:
        with open_checked(source, source_id, frame, limits) as image:
            if max_side is not None and max(image.size) > max_side:
                image.draft(image.mode, fitted_size(*image.size, max_side))  # JPEG: decode smaller
            if account is not None:
                held = decoded_bytes(image.mode, *image.size) + shrink_cost(image.mode, *image.size, max_side)
                account.hold(source_id, held)
            rgb = _small_rgb(image, source_id, max_side, account)
        # leaving the block closed the full-size image (Pillow frees its pixels on close)
        if account is not None:
            account.release(held)
            held = 0
            account.hold(source_id, decoded_bytes(rgb.mode, *rgb.size), "keeping it")
        return rgb
    finally:
        if account is not None and held:
            account.release(held)


def _small_rgb(image: Image.Image, source_id: str, max_side: int | None, account: DecodeAccount | None) -> Image.Image:
    """The pixel policy's RGB at most ``max_side``: shrunk first, unless an EXIF orientation must
    turn it first (the policy reads it from the full image; a shrunk copy has lost it)."""
    if max_side is None or max(image.size) <= max_side:
        return to_rgb(image, source_id)
    if image.getexif().get(ExifTags.Base.Orientation, 1) == 1:
        return to_rgb(shrink(image, max_side), source_id)
    extra = decoded_bytes("RGB", *image.size)
    if account is not None:
        account.hold(source_id, extra, "turning it upright")
    try:
        return shrink(to_rgb(image, source_id), max_side)
    finally:
        if account is not None:
            account.release(extra)
