"""``fusion.pixels`` — the one pixel policy — with its errors as MediaError, for media's readers."""

from __future__ import annotations

from PIL import Image

from fusion.pixels import PixelError, PixelSource, to_uint8
from fusion.pixels import to_rgb as _policy_rgb
from ultra.media.errors import MediaError

__all__ = ["to_rgb", "to_uint8"]


def to_rgb(image: PixelSource, source_id: str) -> Image.Image:
    """An RGB image by ``fusion.pixels.to_rgb``; a refusal is a MediaError naming ``source_id``."""
    try:
        return _policy_rgb(image, source_id)
    except PixelError as error:
        raise MediaError(error.source_id, error.reason) from None
