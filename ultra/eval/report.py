"""Write a scored run: ``metrics.json``, a Markdown table and a PNG chart of accuracy by category;
print it on a terminal.

``metrics.json`` keeps full precision (other tools compare and re-aggregate it); what is printed
is rounded. The chart's Chinese category names render through :mod:`data_zh.figures` (an installed
CJK font, else the bundled Noto Sans CJK SC subset).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from data_zh.figures import chinese_figure, save_figure
from ultra.eval.llava_med import RULE_TITLES

log = logging.getLogger(__name__)

TABLE_COLUMNS = (
    ("n", "n"),
    ("closed_accuracy", "closed acc"),
    ("closed_balanced_accuracy", "closed bal. acc"),
    ("answer_type_consistency", "answer type"),
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


def _sections(metrics: dict[str, Any]) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """(breakdown, [(group, cells)]): the overall row, each breakdown's groups, the baselines."""
    sections = [("", [("overall", metrics["overall"])])]
    for category, groups in metrics.get("by", {}).items():
        sections.append((category, list(groups.items())))
    if metrics.get("baselines"):
        sections.append(("baseline", list(metrics["baselines"].items())))
    return [
        (section, [(name, [_cell(summary, key) for key, _ in TABLE_COLUMNS]) for name, summary in rows])
        for section, rows in sections
    ]


def report_notes(metrics: dict[str, Any]) -> list[str]:
    """The sentences under the table: blind check, missing media, confidence intervals, compat scores."""
    notes = []
    if "image_sensitivity" in metrics:
        sens = metrics["image_sensitivity"]
        notes.append(
            f"image sensitivity: {sens['image_sensitivity']:.1f}% of answers changed with blank images "
            f"({sens['changed']} of {sens['n_compared']})"
        )
    if metrics.get("missing_media"):
        notes.append(f"{len(metrics['missing_media'])} record(s) had missing media and were not answered")
    if "closed_accuracy_ci95" in metrics["overall"]:
        low, high = metrics["overall"]["closed_accuracy_ci95"]
        notes.append(f"closed accuracy 95% bootstrap CI: {low:.1f}–{high:.1f}")
    if "open_recall_ci95" in metrics["overall"]:
        low, high = metrics["overall"]["open_recall_ci95"]
        notes.append(f"open recall 95% bootstrap CI: {low:.1f}–{high:.1f}")
    if metrics.get("n_missing"):
        notes.append(f"{metrics['n_missing']} question(s) had no answer and count as wrong")
    if "llava_med" in metrics:
        lm = metrics["llava_med"]
        notes.append(
            f"{RULE_TITLES[lm['rule']]}: yes/no accuracy {lm['yes_no_accuracy']:.1f} "
            f"({lm['n_closed_counted']} of {lm['n_closed']} closed counted), open recall {lm['recall']:.1f}"
        )
    notes += probability_notes(metrics)
    return notes


def probability_notes(metrics: dict[str, Any]) -> list[str]:
    """One sentence per candidate kind scored by ``Answerer.choose`` (fractions, not percent)."""
    if "probabilities" not in metrics:
        return []
    probabilities = metrics["probabilities"]
    notes = [
        f"closed-answer probabilities (choose), temperature {probabilities['temperature']:.3g} "
        f"from {probabilities.get('temperature_source', 'the caller')}; ECE over "
        f"{probabilities['ece_bins']} equal-width bins"
    ]
    for kind, summary in probabilities["kinds"].items():
        parts = [
            f"n {summary['n']}",
            f"argmax acc {summary['accuracy']:.3f}",
            f"balanced {summary['balanced_accuracy']:.3f}",
        ]
        if "auc" in summary:
            parts.append(f"AUC {summary['positive']} vs {summary['negative']} {_fraction(summary['auc'])}")
            parts.append(f"sensitivity {_fraction(summary['sensitivity'])}")
            parts.append(f"specificity {_fraction(summary['specificity'])}")
        parts += [f"ECE {summary['ece']:.3f}", f"NLL {summary['nll']:.3f}"]
        notes.append(f"choose {kind}: " + ", ".join(parts))
    return notes


def _fraction(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown_table(metrics: dict[str, Any], title: str = "") -> str:
    """Overall row and one row per breakdown group, percent with one decimal."""
    header = "| group | " + " | ".join(label for _, label in TABLE_COLUMNS) + " |"
    lines = [f"### {title}", ""] if title else []
    lines += [header, "|" + " --- |" * (len(TABLE_COLUMNS) + 1)]
    for section, rows in _sections(metrics):
        for name, cells in rows:
            label = f"{section}: {name}" if section else f"**{name}**"
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    notes = report_notes(metrics)
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def metrics_table(metrics: dict[str, Any], title: str = ""):
    """The Markdown table's rows as a rich Table, each breakdown under its own heading row: at 80
    columns labels wrap inside their cells and every row stays one row (Markdown printed through
    rich was cut mid-row)."""
    from rich import box
    from rich.table import Table

    # SIMPLE_HEAD's column divider is a space: with no padding the nine numbers take 61 columns
    table = Table(title=title or None, box=box.SIMPLE_HEAD, show_edge=False, padding=0)
    table.add_column("group", overflow="fold", min_width=12, max_width=18)
    for _, label in TABLE_COLUMNS:  # as narrow as "100.0" and the header's longest word
        table.add_column(label, justify="right", width=max(5, *map(len, label.split())))
    for section, rows in _sections(metrics):
        if section:
            table.add_section()
            table.add_row(section, style="bold")
        for name, cells in rows:
            table.add_row(name, *cells)
    return table


def print_report(metrics: dict[str, Any], console, title: str = "") -> None:
    """Print the metrics table and its notes on a rich console (numbers rounded, no markup read)."""
    console.print(metrics_table(metrics, title))
    for note in report_notes(metrics):
        console.print(f"- {note}", markup=False, highlight=False, soft_wrap=True)


def rounded(value: Any, digits: int = 2) -> Any:
    """``value`` with every float rounded, for printing (metrics.json keeps full precision)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item, digits) for item in value]
    return value


def accuracy_chart(metrics: dict[str, Any], path: str | Path, category: str = "content_type") -> Path:
    """Bar chart: closed accuracy and open recall per group of one breakdown (PNG)."""
    groups = metrics["by"].get(category, {})
    names = list(groups)
    closed = [groups[n].get("closed_accuracy", 0.0) for n in names]
    recall = [groups[n].get("open_recall", 0.0) for n in names]
    with chinese_figure((max(6.0, 0.8 * len(names) + 2), 4)) as fig:
        ax = fig.subplots()
        positions = range(len(names))
        ax.bar([p - 0.2 for p in positions], closed, width=0.4, label="closed accuracy / 封闭题准确率")
        ax.bar([p + 0.2 for p in positions], recall, width=0.4, label="open recall / 开放题召回率")
        ax.set_xticks(list(positions), names, rotation=30, ha="right")
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
        ax.set_title(f"按 {category} 分组 / by {category}")
        ax.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        return save_figure(fig, path, dpi=110)


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
    if metrics.get("probabilities", {}).get("kinds"):
        from ultra.eval.calibration import reliability_chart

        paths["reliability"] = reliability_chart(metrics["probabilities"], out_dir / "reliability.png")
    return paths
