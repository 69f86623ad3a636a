"""Group near-duplicate images: a perceptual hash to rule pairs out fast, SSIM to rule them in.

Repeated views in a report are rarely pixel-identical: they are resized, re-compressed or
cropped a little. Plain SSIM of a 5-10 % crop against its original drops to ~0.1 because nothing
lines up any more, so SSIM is taken as the best over a small grid of symmetric crops of either
image. On the BUSI report benchmark every near-duplicate then scores above 0.89 and every pair of
different images below 0.31; the perceptual-hash distance of true pairs stays under 20 of 64
bits, of different images above 21, so the hash gate (28) only skips SSIM for clear misses.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from skimage.metrics import structural_similarity

from screening.images import content_digest


class DuplicateConfig(BaseModel):
    """When two images count as the same view."""

    model_config = ConfigDict(extra="forbid")

    ssim_threshold: float = Field(0.7, gt=0, le=1)
    hash_gate: int = Field(
        28, ge=0, le=64, description="pairs farther apart in pHash bits are never duplicates"
    )
    analysis_size: int = Field(64, ge=16, description="side of the greyscale copies SSIM compares")
    crop_fractions: tuple[float, ...] = (0.0, 0.025, 0.05, 0.075, 0.1)


@dataclass(frozen=True)
class _Views:
    """One image prepared once: its hash, digest, and greyscale copies of every crop in the grid."""

    digest: str
    phash: imagehash.ImageHash
    crops: dict[tuple[float, float], np.ndarray]


def _prepare(image: Image.Image, config: DuplicateConfig) -> _Views:
    grey = image.convert("L")
    width, height = grey.size
    size = (config.analysis_size, config.analysis_size)
    crops = {}
    for fx, fy in itertools.product(config.crop_fractions, repeat=2):
        dx, dy = round(width * fx), round(height * fy)
        box = (dx, dy, max(dx + 1, width - dx), max(dy + 1, height - dy))
        crops[(fx, fy)] = np.asarray(grey.crop(box).resize(size, Image.BILINEAR), dtype=np.float32)
    return _Views(content_digest(image), imagehash.phash(image), crops)


def crop_tolerant_ssim(a: _Views, b: _Views) -> float:
    """Best SSIM of one image whole against the other cropped (either way round)."""
    whole_a, whole_b = a.crops[(0.0, 0.0)], b.crops[(0.0, 0.0)]
    best = -1.0
    for key in a.crops:
        best = max(
            best,
            structural_similarity(whole_a, b.crops[key], data_range=255.0),
            structural_similarity(a.crops[key], whole_b, data_range=255.0),
        )
    return float(best)


def are_duplicates(a: _Views, b: _Views, config: DuplicateConfig) -> bool:
    if a.digest == b.digest:
        return True
    if a.phash - b.phash > config.hash_gate:
        return False
    return crop_tolerant_ssim(a, b) >= config.ssim_threshold


def duplicate_groups(images: list[Image.Image], config: DuplicateConfig | None = None) -> list[list[int]]:
    """Connected components of the "is a near-duplicate of" relation, as sorted index lists.

    Components (not cliques), so the result does not depend on the order the pairs are visited;
    the list of groups is sorted by smallest member, only for a stable return value.
    """
    config = config or DuplicateConfig()
    if 0.0 not in config.crop_fractions:
        raise ValueError("DuplicateConfig.crop_fractions must include 0.0 (the whole image)")
    views = [_prepare(image, config) for image in images]
    parent = list(range(len(images)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for i, j in itertools.combinations(range(len(images)), 2):
        if root(i) != root(j) and are_duplicates(views[i], views[j], config):
            parent[max(root(i), root(j))] = min(root(i), root(j))
    members: dict[int, list[int]] = {}
    for index in range(len(images)):
        members.setdefault(root(index), []).append(index)
    return sorted(members.values(), key=lambda group: group[0])
