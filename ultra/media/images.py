"""Encoded images (PNG, JPEG, BMP, TIFF, anything Pillow reads) to RGB, size-checked from the header.

``Image.open`` parses only the header, so width x height are compared with ``MediaLimits`` before
any pixel is decoded; Pillow's own bomb check (``DecompressionBombError``) becomes a MediaError.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ultra.media.errors import MediaError
from ultra.media.limits import DEFAULT_LIMITS, MediaLimits
from ultra.media.pixels import to_rgb


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


def decode_image(
    source: Path | bytes, source_id: str, frame: int = 0, limits: MediaLimits = DEFAULT_LIMITS
) -> Image.Image:
    """Frame ``frame`` of an encoded image as RGB; MediaError if unreadable or over ``limits``."""
    with open_checked(source, source_id, frame, limits) as image:
        return to_rgb(image, source_id)
