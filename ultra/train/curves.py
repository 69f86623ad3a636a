"""The loss-curve picture of a run: loss against the optimizer step, one line per stage, and, for
preference training (DPO), the held-out reward margin and accuracy beside it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from data_zh.figures import chinese_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STEP_LABEL = "优化步 / optimizer step"


def loss_curve_figure(history: Sequence[dict], validation: Sequence[dict] = (), title: str = "") -> Figure:
    """Left: the training loss of every stage (a moving average over noisy runs); right, only when
    ``validation`` holds reward-margin rows: mean reward margin and reward accuracy."""
    margins = [row for row in validation if "reward_margin" in row]
    with chinese_figure((10, 4) if margins else (7, 4), dpi=110) as figure:
        if margins:
            losses, rewards = figure.subplots(1, 2)
            _draw_reward_margins(rewards, margins)
        else:
            losses = figure.subplots()
        _draw_losses(losses, history)
        if title:
            figure.suptitle(title)
        figure.tight_layout()
    return figure


def plot_loss_curve(
    history: Sequence[dict], path: str | Path, validation: Sequence[dict] = (), title: str = ""
) -> Path:
    """:func:`loss_curve_figure` written as a PNG; returns its path."""
    return save_figure(loss_curve_figure(history, validation, title), path)


def _moving_average(values: list[float], window: int) -> list[float]:
    return [
        sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
        for i in range(len(values))
    ]


def _draw_losses(axis: Axes, history: Sequence[dict]) -> None:
    stages: dict[str, list[dict]] = {}
    for row in history:
        stages.setdefault(row["stage"], []).append(row)
    for name, rows in stages.items():
        steps = [row["global_step"] for row in rows]
        losses = [row["loss"] for row in rows]
        (line,) = axis.plot(steps, losses, alpha=0.35, linewidth=0.8)
        window = max(1, len(losses) // 20)
        if window > 1:
            axis.plot(steps, _moving_average(losses, window), color=line.get_color(), linewidth=1.6, label=name)
        else:
            line.set_label(name)
            line.set_alpha(1.0)
    axis.set_xlabel(STEP_LABEL)
    axis.set_ylabel("损失 / loss")
    axis.set_title("训练损失 / training loss")
    axis.grid(alpha=0.3)
    if stages:
        axis.legend()


def _draw_reward_margins(axis: Axes, margins: list[dict]) -> None:
    steps = [row["global_step"] for row in margins]
    axis.plot(steps, [row["reward_margin"] for row in margins], marker="o", label="奖励差 / reward margin")
    axis.set_xlabel(STEP_LABEL)
    axis.set_ylabel("平均奖励差 / mean reward margin")
    axis.axhline(0.0, color="grey", linewidth=0.8)
    twin = axis.twinx()
    twin.plot(
        steps,
        [row["reward_accuracy"] for row in margins],
        color="tab:orange",
        linestyle="--",
        marker=".",
        label="奖励准确率 / reward accuracy",
    )
    twin.set_ylim(0, 1)
    twin.set_ylabel("奖励准确率 / reward accuracy")
    axis.set_title("留出偏好对 / held-out pairs")
    handles = axis.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    axis.legend(handles, [handle.get_label() for handle in handles], loc="best")
    axis.grid(alpha=0.3)
