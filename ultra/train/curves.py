"""The loss-curve picture of a run (PNG, Chinese-capable font when installed)."""

from __future__ import annotations

import logging
from pathlib import Path

from data_zh.fonts import cjk_rc_params

logger = logging.getLogger(__name__)


def plot_loss_curve(history: list[dict], path: str | Path, title: str = "训练损失 / training loss") -> Path:
    """One line per stage of loss against global step; also a moving average when noisy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(cjk_rc_params()):
        figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
        stages: dict[str, list[dict]] = {}
        for row in history:
            stages.setdefault(row["stage"], []).append(row)
        for name, rows in stages.items():
            steps = [row["global_step"] for row in rows]
            losses = [row["loss"] for row in rows]
            (line,) = axis.plot(steps, losses, alpha=0.35, linewidth=0.8)
            window = max(1, len(losses) // 20)
            if window > 1:
                smooth = [
                    sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
                    for i in range(len(losses))
                ]
                axis.plot(steps, smooth, color=line.get_color(), linewidth=1.6, label=f"{name}")
            else:
                line.set_label(name)
                line.set_alpha(1.0)
        axis.set_xlabel("优化步 / optimizer step")
        axis.set_ylabel("损失 / loss")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        if stages:
            axis.legend()
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)
    return path
