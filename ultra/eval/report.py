"""Write a scored run: ``metrics.json``, a Markdown table and a PNG chart of accuracy by category.

The chart uses a CJK font (WenQuanYi Zen Hei, Debian ``fonts-wqy-zenhei``) found through
matplotlib's font manager so Chinese category names render; without it the chart is still
written and a warning says the labels may show as boxes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from data_zh.fonts import cjk_rc_params
from ultra.eval.llava_med import RULE_TITLES

log = logging.getLogger(__name__)

TABLE_COLUMNS = (
    ("n", "n"),
    ("closed_accuracy", "closed acc"),
    ("closed_balanced_accuracy", "closed bal. acc"),
    ("answer_type_consistency", "answer-type consistency"),
    ("open_recall", "open recall"),
    ("open_f1", "open F1"),
    ("open_exact_match", "open EM"),
    ("open_bleu_1", "BLEU-1"),
    ("open_bleu_4", "BLEU-4"),
    ("open_rouge_l", "ROUGE-L"),
)


def _cell(summary: dict[str, Any], key: str) -> str:
    value = summary.get(key)
    if value is None:
        return "–"
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def markdown_table(metrics: dict[str, Any], title: str = "") -> str:
    """Overall row and one row per breakdown group, percent with one decimal."""
    header = "| group | " + " | ".join(label for _, label in TABLE_COLUMNS) + " |"
    lines = [f"### {title}", ""] if title else []
    lines += [header, "|" + " --- |" * (len(TABLE_COLUMNS) + 1)]
    rows = [("**overall**", metrics["overall"])]
    for category, groups in metrics.get("by", {}).items():
        rows += [(f"{category}: {name}", summary) for name, summary in groups.items()]
    for name, summary in rows:
        lines.append(f"| {name} | " + " | ".join(_cell(summary, key) for key, _ in TABLE_COLUMNS) + " |")
    for name, summary in metrics.get("baselines", {}).items():
        lines.append(
            f"| baseline: {name} | " + " | ".join(_cell(summary, key) for key, _ in TABLE_COLUMNS) + " |"
        )
    extra = []
    if "image_sensitivity" in metrics:
        sens = metrics["image_sensitivity"]
        extra.append(
            f"image sensitivity: {sens['image_sensitivity']:.1f}% of answers changed with blank images "
            f"({sens['changed']} of {sens['n_compared']})"
        )
    if metrics.get("missing_media"):
        extra.append(f"{len(metrics['missing_media'])} record(s) had missing media and were not answered")
    if "closed_accuracy_ci95" in metrics["overall"]:
        low, high = metrics["overall"]["closed_accuracy_ci95"]
        extra.append(f"closed accuracy 95% bootstrap CI: {low:.1f}–{high:.1f}")
    if "open_recall_ci95" in metrics["overall"]:
        low, high = metrics["overall"]["open_recall_ci95"]
        extra.append(f"open recall 95% bootstrap CI: {low:.1f}–{high:.1f}")
    if metrics.get("n_missing"):
        extra.append(f"{metrics['n_missing']} question(s) had no answer and count as wrong")
    if "llava_med" in metrics:
        lm = metrics["llava_med"]
        extra.append(
            f"{RULE_TITLES[lm['rule']]}: yes/no accuracy {lm['yes_no_accuracy']:.1f} "
            f"({lm['n_closed_counted']} of {lm['n_closed']} closed counted), open recall {lm['recall']:.1f}"
        )
    if extra:
        lines += ["", *[f"- {line}" for line in extra]]
    return "\n".join(lines) + "\n"


def accuracy_chart(metrics: dict[str, Any], path: str | Path, category: str = "content_type") -> Path:
    """Bar chart: closed accuracy and open recall per group of one breakdown (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = metrics["by"].get(category, {})
    names = list(groups)
    closed = [groups[n].get("closed_accuracy", 0.0) for n in names]
    recall = [groups[n].get("open_recall", 0.0) for n in names]
    with plt.rc_context(cjk_rc_params()):
        fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(names) + 2), 4))
        positions = range(len(names))
        ax.bar([p - 0.2 for p in positions], closed, width=0.4, label="closed accuracy / 封闭题准确率")
        ax.bar([p + 0.2 for p in positions], recall, width=0.4, label="open recall / 开放题召回率")
        ax.set_xticks(list(positions), names, rotation=30, ha="right")
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
        ax.set_title(f"按 {category} 分组 / by {category}")
        ax.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return path


def write_report(metrics: dict[str, Any], out_dir: str | Path, title: str = "") -> dict[str, Path]:
    """metrics.json + metrics.md + accuracy.png in ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "metrics.json",
        "markdown": out_dir / "metrics.md",
        "chart": out_dir / "accuracy.png",
    }
    paths["json"].write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    paths["markdown"].write_text(markdown_table(metrics, title), encoding="utf-8")
    chart_category = "content_type" if metrics["by"].get("content_type") else next(iter(metrics["by"]), "")
    if chart_category:
        accuracy_chart(metrics, paths["chart"], chart_category)
    else:
        paths.pop("chart")
    return paths
