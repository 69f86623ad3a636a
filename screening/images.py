"""Accept PIL images or numpy arrays and hand every other module one kind: RGB PIL images."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from fusion.pixels import PixelSource, to_rgb

ImageInput = PixelSource


def as_rgb_image(image: ImageInput, index: int = 0) -> Image.Image:
    """An RGB PIL image from a PIL image or an ``HxW`` / ``HxWx{1,3,4}`` array, by the one pixel
    policy (``fusion.pixels.to_rgb``); ``index`` names the image in errors (``"image 3: ..."``)."""
    return to_rgb(image, f"image {index}")


def content_digest(image: Image.Image) -> str:
    """A digest of the pixels and size: equal only for identical images, so ties break by content,
    never by the position an image was given in."""
    digest = hashlib.sha1(f"{image.size}".encode())
    digest.update(np.asarray(image.convert("RGB")).tobytes())
    return digest.hexdigest()
