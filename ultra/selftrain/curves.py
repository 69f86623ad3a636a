"""The DPO picture of a run: training loss and held-out reward margin against the step (PNG,
Chinese labels through ``data_zh.fonts``)."""

from __future__ import annotations

from pathlib import Path

from data_zh.fonts import cjk_rc_params


def plot_dpo_curves(history: list[dict], validation: list[dict], path: str | Path, title: str = "") -> Path:
    """Left: DPO loss per optimizer step; right: mean reward margin and reward accuracy on held-out pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    margins = [row for row in validation if "reward_margin" in row]
    with plt.rc_context(cjk_rc_params()):
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
        left.plot([row["global_step"] for row in history], [row["loss"] for row in history], linewidth=1.2)
        left.set_xlabel("优化步 / optimizer step")
        left.set_ylabel("DPO 损失 / loss")
        left.set_title("训练损失 / training loss")
        left.grid(alpha=0.3)
        steps = [row["global_step"] for row in margins]
        right.plot(
            steps, [row["reward_margin"] for row in margins], marker="o", label="奖励差 / reward margin"
        )
        right.set_xlabel("优化步 / optimizer step")
        right.set_ylabel("平均奖励差 / mean reward margin")
        right.axhline(0.0, color="grey", linewidth=0.8)
        twin = right.twinx()
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
        right.set_title("留出偏好对 / held-out pairs")
        handles = right.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        right.legend(handles, [h.get_label() for h in handles], loc="best")
        right.grid(alpha=0.3)
        if title:
            figure.suptitle(title)
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)
    return path
