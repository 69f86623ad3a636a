"""The blank image: what "no image" looks like to the encoders.

Blind-image baselines, the screening teacher, ``--explain`` and evaluation all use this one
definition: an image filled with the encoder's mean colour, which normalises to (almost) zeros —
the same blank as ``fusion.VisionFusion.blank_pixel_values``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from torch import nn

# timm's IMAGENET_DEFAULT_MEAN: the normalisation mean of the tiny-zh encoders.
IMAGENET_MEAN = (0.485, 0.456, 0.406)


def blank_colour(fusion: nn.Module | None = None) -> tuple[int, int, int]:
    """The 8-bit RGB mean colour of the first encoder (ImageNet's when no fusion is given)."""
    mean = IMAGENET_MEAN if fusion is None else fusion.encoders[0].transform.mean
    colour = np.round(np.asarray(mean, dtype=np.float64) * 255.0).clip(0, 255).astype(np.uint8)
    return (int(colour[0]), int(colour[1]), int(colour[2]))


def blank_like(image: Image.Image, fusion: nn.Module | None = None) -> Image.Image:
    """The blank version of an image: same size, filled with the encoder's mean colour.

    With several encoders of different means the first encoder's mean is used here, while
    ``Request(blank_images=True)`` feeds each encoder its exact zeros.
    """
    return Image.new("RGB", (image.width, image.height), blank_colour(fusion))
