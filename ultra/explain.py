"""Evidence for an answer: occlusion sensitivity of the answer's log-likelihood over an image.

Each cell of a grid over the image is replaced by the blank colour (zeros after normalisation,
the definition ``ultra.blank_like`` uses) and the drop in log p(answer | images, question) is
recorded, through the front door's ``Answerer.log_likelihoods``. Large drops mark the regions the answer depends on; a map that is flat everywhere
means the answer does not depend on this image at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from data_zh.figures import chinese_figure, save_figure
from ultra.answerer import Answerer, Request
from ultra.answerer.blank import blank_colour

logger = logging.getLogger(__name__)

METHOD = "occlusion sensitivity of the answer's log-likelihood"


@dataclass
class OcclusionMap:
    """``drops[i, j]``: log-likelihood lost when grid cell (i, j) of the image is blanked."""

    drops: np.ndarray
    base_log_likelihood: float
    image_index: int
    method: str = METHOD


def _occluded(
    image: Image.Image, cell: tuple[int, int], grid: int, colour: tuple[int, int, int]
) -> Image.Image:
    row, col = cell
    y0, y1 = row * image.height // grid, (row + 1) * image.height // grid
    x0, x1 = col * image.width // grid, (col + 1) * image.width // grid
    copy = image.copy()
    copy.paste(colour, (x0, y0, x1, y1))
    return copy


def occlusion_map(
    answerer: Answerer,
    request: Request,
    answer: str,
    image_index: int = 0,
    grid: int = 8,
    batch_size: int = 16,
) -> OcclusionMap:
    """Blank each of ``grid``×``grid`` cells of the request's image ``image_index`` (in the view
    the encoders see, after any scan-region crop) and measure the answer's log-likelihood."""
    if not 0 <= image_index < len(request.images):
        raise ValueError(f"image_index {image_index} is out of range for {len(request.images)} images")
    if not answer.strip():
        raise ValueError("occlusion needs a non-empty answer to score")
    prepared = answerer.processor.prepare_image(request.images[image_index])
    colour = blank_colour(answerer.model.vision_tower)
    cells = [(r, c) for r in range(grid) for c in range(grid)]

    def with_image(image: Image.Image) -> Request:
        images = list(request.images)
        images[image_index] = image
        return replace(request, images=images)

    base = answerer.log_likelihood(with_image(prepared), answer).total
    variants = [(with_image(_occluded(prepared, cell, grid, colour)), answer) for cell in cells]
    scores = answerer.log_likelihoods(variants, batch_size=batch_size)
    drops = np.zeros((grid, grid), dtype=np.float32)
    for (row, col), score in zip(cells, scores, strict=True):
        drops[row, col] = base - score.total
    return OcclusionMap(drops=drops, base_log_likelihood=base, image_index=image_index)


def save_heatmap(
    image: Image.Image, occlusion: OcclusionMap, path: str | Path, question: str = "", answer: str = ""
) -> Path:
    """The image with the occlusion map over it, as a PNG (title states the method)."""
    with chinese_figure((6, 6.4)) as figure:
        axis = figure.subplots()
        axis.imshow(image.convert("RGB"))
        heat = axis.imshow(
            occlusion.drops,
            cmap="inferno",
            alpha=0.5,
            extent=(0, image.width, image.height, 0),
            interpolation="bilinear",
        )
        figure.colorbar(heat, ax=axis, fraction=0.046, label="log-likelihood drop when blanked")
        axis.set_axis_off()
        title = f"问：{question}\n答：{answer}\n" if question or answer else ""
        axis.set_title(f"{title}{occlusion.method}（仅供研究，非临床诊断）", fontsize=9)
        figure.tight_layout()
        return save_figure(figure, path, dpi=120)
