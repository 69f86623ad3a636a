"""Every chart goes through ``data_zh.figures``: no package flips matplotlib's process-wide backend
or touches pyplot, and a figure with Chinese text draws every glyph with the bundled font."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from fontTools.ttLib import TTFont
from matplotlib import font_manager
from PIL import Image

from data_zh.figures import chinese_figure, save_figure
from data_zh.fonts import BUNDLED_FONT
from tests.conftest import REPO_ROOT
from ultra.train.curves import loss_curve_figure

SCANNED = ("ultra", "fusion", "screening", "data_zh", "demo", "benchmarks")
TITLE = "甲状腺结节：良性与恶性"


def _pyplot_or_backend_switch(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("matplotlib.pyplot")]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("matplotlib.pyplot"):
                found.append(node.module)
            elif node.module == "matplotlib":
                found += [f"matplotlib.{alias.name}" for alias in node.names if alias.name in ("pyplot", "use")]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "use"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in ("matplotlib", "mpl")
        ):
            found.append(f"{node.func.value.id}.use()")
    return found


def test_the_scan_sees_each_way_of_reaching_pyplot_or_the_backend():
    source = "import matplotlib.pyplot as plt\nfrom matplotlib import pyplot\nimport matplotlib\nmatplotlib.use('Agg')\n"
    assert _pyplot_or_backend_switch(ast.parse(source)) == ["matplotlib.pyplot", "matplotlib.pyplot", "matplotlib.use()"]


def test_no_package_imports_pyplot_or_switches_the_backend():
    offenders = {}
    for package in SCANNED:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            found = _pyplot_or_backend_switch(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
            if found:
                offenders[str(path.relative_to(REPO_ROOT))] = found
    assert not offenders, f"draw through data_zh.figures instead: {offenders}"


def _missing_glyph_messages(caught: list, records: list[logging.LogRecord]) -> list[str]:
    messages = [str(warning.message) for warning in caught] + [record.getMessage() for record in records]
    return [message for message in messages if "missing from font" in message]


def _draw(text: str, path: Path, caplog) -> tuple[list[str], set[str]]:
    """Draw ``text`` as title, tick labels and legend, save after the block; the missing-glyph
    messages and the font files of the tick labels."""
    with (
        warnings.catch_warnings(record=True) as caught,
        caplog.at_level(logging.WARNING, logger="matplotlib"),
    ):
        warnings.simplefilter("always")
        with chinese_figure((4, 3), system_fonts=False) as figure:
            axis = figure.subplots()
            axis.bar(list(text[:4]), [1, 2, 3, 4], label=text)
            axis.set_title(text)
            axis.legend()
        save_figure(figure, path)
        used = {str(font_manager.findfont(label.get_fontproperties())) for label in axis.get_xticklabels()}
    return _missing_glyph_messages(caught, caplog.records), used


def test_chinese_figure_draws_every_glyph_with_the_bundled_font(tmp_path, caplog):
    missing, used = _draw(TITLE, tmp_path / "chart.png", caplog)
    assert not missing, missing
    assert used == {str(BUNDLED_FONT)}
    mapped = TTFont(BUNDLED_FONT, lazy=True).getBestCmap()
    assert all(ord(char) in mapped for char in TITLE if char != "：")
    ink = np.asarray(Image.open(tmp_path / "chart.png").convert("L")) < 128
    assert ink.sum() > 2000


def test_a_glyph_no_font_has_is_reported(tmp_path, caplog):
    """The check above can fail: an Extension B ideograph is in neither the subset nor DejaVu Sans."""
    missing, _ = _draw("\U00020000\U00020001\U00020002\U00020003", tmp_path / "chart.png", caplog)
    assert missing


def test_drawing_leaves_pyplot_and_the_backend_alone(tmp_path):
    """In a fresh process, so pyplot imported by another test cannot hide an import here. The
    backend is read raw: ``matplotlib.get_backend()`` itself imports pyplot to resolve it."""
    script = (
        "import sys, matplotlib\n"
        "backend = matplotlib.rcParams._get('backend')\n"
        "from ultra.train.curves import plot_loss_curve\n"
        f"plot_loss_curve([{{'stage': 's', 'global_step': 1, 'loss': 2.0}}], {str(tmp_path / 'c.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
        "assert matplotlib.rcParams._get('backend') is backend, 'the backend was switched'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO_ROOT, timeout=120)
    assert (tmp_path / "c.png").stat().st_size > 1000


@pytest.mark.parametrize("with_margins", [False, True])
def test_one_loss_curve_for_training_and_preference_runs(tmp_path, with_margins):
    history = [{"stage": stage, "global_step": step, "loss": 3.0 / step} for stage in ("a", "b") for step in range(1, 41)]
    validation = [{"global_step": 10, "reward_margin": 0.2, "reward_accuracy": 0.6}] if with_margins else []
    figure = loss_curve_figure(history, validation, title="偏好训练")
    losses = figure.axes[0]
    assert [text.get_text() for text in losses.get_legend().get_texts()] == ["a", "b"]
    assert len(figure.axes) == (3 if with_margins else 1)  # margin axis and its twin
    path = save_figure(figure, tmp_path / "nested" / "curve.png")
    assert Image.open(path).size == (int(figure.get_figwidth() * 110), int(figure.get_figheight() * 110))
