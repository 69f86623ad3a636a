"""Accept PIL images or numpy arrays and hand every other module one kind: RGB PIL images."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

ImageInput = Image.Image | np.ndarray


def as_rgb_image(image: ImageInput, index: int = 0) -> Image.Image:
    """An RGB PIL image from a PIL image or an ``HxW`` / ``HxWx{1,3,4}`` array.

    Arrays must be ``uint8`` or floats in ``[0, 1]``; anything else is refused rather than guessed
    (a 12-bit frame rescaled by guesswork would change every score). ``index`` names the image in
    the error message.
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image {index}: expected a PIL image or a numpy array, got {type(image).__name__}")
    array = image
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"image {index}: array of shape {image.shape} is not HxW, HxWx3 or HxWx4")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError(f"image {index}: float arrays must hold values in [0, 1]")
        array = np.round(array * 255).astype(np.uint8)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        raise ValueError(f"image {index}: array dtype {array.dtype} is neither uint8 nor float in [0, 1]")
    return Image.fromarray(np.ascontiguousarray(array)).convert("RGB")


def content_digest(image: Image.Image) -> str:
    """A digest of the pixels and size: equal only for identical images, so ties break by content,
    never by the position an image was given in."""
    digest = hashlib.sha1(f"{image.size}".encode())
    digest.update(np.asarray(image.convert("RGB")).tobytes())
    return digest.hexdigest()
