"""Lesion masks of image records: ``extra["masks"]`` lists mask files (relative to the media root)
whose union is the lesion, because a dataset may draw one lesion, or several, in separate files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_zh.schema import Record

MASKS = "masks"
"""The ``Record.extra`` key of the mask files (an empty list: the image has no mask file)."""


def merge_masks(paths: Sequence[str | Path]) -> np.ndarray:
    """The union of binary mask images (nonzero = lesion) as a boolean array; every file names its
    size when the sizes differ, since a mask drawn for another image must not be merged."""
    from PIL import Image

    if not paths:
        raise ValueError("no mask files to merge")
    merged: np.ndarray | None = None
    for path in paths:
        with Image.open(path) as image:
            mask = np.asarray(image.convert("L")) > 0
        if merged is not None and mask.shape != merged.shape:
            size, first = f"{mask.shape[1]}x{mask.shape[0]}", f"{merged.shape[1]}x{merged.shape[0]}"
            raise ValueError(f"{path}: mask is {size}, {paths[0]} is {first}")
        merged = mask if merged is None else merged | mask
    return merged


def record_mask(record: Record, root: str | Path | None = None) -> np.ndarray | None:
    """The lesion mask of a record (``root`` overrides its media root); None when it lists none."""
    paths = record.extra.get(MASKS) or []
    return merge_masks([record.media.resolve(path, root) for path in paths]) if paths else None
