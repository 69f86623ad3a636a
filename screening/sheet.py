"""A contact sheet: every image of a report with its weight and verdict, the report as title."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from data_zh.figures import chinese_figure, save_figure
from screening.images import ImageInput, as_rgb_image
from screening.screener import ScreeningResult

KEEP_COLOUR = "#1a7f37"
DROP_COLOUR = "#b42318"
REASONS_ZH = {"low_weight": "权重低", "uninformative": "无信息（空白/无纹理）"}


def verdict_text(keep: bool, reason: str | None) -> str:
    """保留 or 丢弃 with the reason in Chinese (duplicate_of:k -> 与第k+1张重复)."""
    if keep:
        return "保留"
    if reason and reason.startswith("duplicate_of:"):
        return f"丢弃：与第{int(reason.split(':', 1)[1]) + 1}张重复"
    return f"丢弃：{REASONS_ZH.get(reason or '', reason)}"


def write_contact_sheet(
    result: ScreeningResult,
    images: Sequence[ImageInput],
    path: str | Path,
    columns: int = 4,
    thumbnail: int = 256,
) -> Path:
    """Draw the sheet as a PNG; images are numbered from 1 as in the report's wording."""
    if len(images) != len(result.images):
        raise ValueError(f"{len(images)} images for a result of {len(result.images)}")
    columns = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / columns)
    with chinese_figure((3.2 * columns, 3.6 * rows + 0.6)) as figure:
        axes = figure.subplots(rows, columns, squeeze=False)
        for axis in axes.flat:
            axis.axis("off")
        for verdict, image in zip(result.images, images, strict=True):
            picture = as_rgb_image(image, verdict.index)
            picture.thumbnail((thumbnail, thumbnail), Image.BILINEAR)
            axis = axes.flat[verdict.index]
            axis.imshow(picture)
            colour = KEEP_COLOUR if verdict.keep else DROP_COLOUR
            for spine in axis.spines.values():
                spine.set(visible=True, color=colour, linewidth=4)
            axis.set_xticks([])
            axis.set_yticks([])
            axis.axis("on")
            axis.set_title(
                f"第{verdict.index + 1}张  权重 {verdict.weight:.2f}  组 {verdict.group}\n"
                f"{verdict_text(verdict.keep, verdict.reason)}",
                color=colour,
                fontsize=10,
            )
        figure.suptitle(f"报告：{result.report}", fontsize=12)
        figure.tight_layout()
        return save_figure(figure, path, dpi=100)
