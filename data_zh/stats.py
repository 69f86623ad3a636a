"""Counts of records by source, specialty, task, modality, language and split, and a chart of them."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from data_zh.figures import chinese_figure, save_figure
from data_zh.schema import Record

logger = logging.getLogger(__name__)

DIMENSIONS = {
    "source": "来源",
    "specialty": "专科",
    "task": "任务",
    "modality": "模态",
    "language": "语言",
    "split": "划分",
    "answer_type": "答案类型",
}


def record_stats(records: Iterable[Record]) -> dict[str, Counter[str]]:
    """Dimension -> value -> count (missing values counted as "-")."""
    stats: dict[str, Counter[str]] = {name: Counter() for name in DIMENSIONS}
    for record in records:
        for name in DIMENSIONS:
            value = getattr(record, name)
            stats[name][str(value) if value is not None else "-"] += 1
    return stats


def plot_stats(stats: dict[str, Counter[str]], path: str | Path, title: str = "数据统计") -> Path:
    """One horizontal bar chart per dimension in a PNG; Chinese labels need a CJK font
    (WenQuanYi Zen Hei preferred), without one the chart is still written and a warning logged."""
    dims = [name for name, counts in stats.items() if counts]
    with chinese_figure((12, 2.2 * ((len(dims) + 1) // 2) + 1), layout="constrained") as figure:
        axes = figure.subplots(max(1, (len(dims) + 1) // 2), 2, squeeze=False).ravel()
        for axis, name in zip(axes, dims, strict=False):
            items = stats[name].most_common()
            axis.barh(
                [value for value, _ in items][::-1], [count for _, count in items][::-1], color="#4c72b0"
            )
            axis.set_title(f"{DIMENSIONS.get(name, name)} ({name})")
            for y, (_, count) in enumerate(items[::-1]):
                axis.annotate(
                    str(count), (count, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8
                )
        for axis in axes[len(dims) :]:
            axis.set_visible(False)
        figure.suptitle(title)
        return save_figure(figure, path, dpi=100)
