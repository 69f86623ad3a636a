"""Charts render Chinese with the bundled Noto Sans CJK SC subset when no CJK font is installed."""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import pytest
from fontTools.ttLib import TTFont
from matplotlib import font_manager
from PIL import Image

from data_zh.figures import chinese_figure
from data_zh.fonts import BUNDLED_FAMILY, BUNDLED_FONT, cjk_font_families, cjk_rc_params
from data_zh.fonts.subset import characters_in, gb2312_characters, package_text_files
from tests.conftest import REPO_ROOT

LABELS = ("良性结节", "恶性肿瘤", "甲状腺", "胆囊息肉")


def _render(text: str) -> np.ndarray:
    with chinese_figure((2.0, 0.6), system_fonts=False) as figure:
        figure.text(0.05, 0.3, text, fontsize=14)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return np.asarray(Image.open(buffer).convert("L"))


def test_chart_without_system_fonts_draws_chinese_with_the_bundled_font(caplog):
    params = cjk_rc_params(system_fonts=False)
    assert params["font.family"][0] == BUNDLED_FAMILY
    with (
        warnings.catch_warnings(record=True) as caught,
        caplog.at_level(logging.WARNING, logger="matplotlib"),
        chinese_figure((5, 3), system_fonts=False) as figure,
    ):
        warnings.simplefilter("always")
        axes = figure.subplots()
        axes.bar(LABELS, [3, 1, 4, 2])
        axes.set_title("超声问答: 各类别数量 (n=10)")
        axes.set_ylabel("数量")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        used = {str(font_manager.findfont(label.get_fontproperties())) for label in axes.get_xticklabels()}
    messages = [str(warning.message) for warning in caught] + [
        record.getMessage() for record in caplog.records
    ]
    assert not messages, messages
    assert used == {str(BUNDLED_FONT)}
    image = np.asarray(Image.open(buffer).convert("L"))
    assert (image < 128).sum() > 2000, "the chart is (nearly) blank"


def test_bundled_font_draws_distinct_glyphs_not_boxes():
    rendered = [_render(label) for label in LABELS]
    assert all((image < 128).sum() > 50 for image in rendered)
    # missing glyphs would all be the same .notdef box, so labels of equal length would look alike
    assert not np.array_equal(rendered[0], rendered[1])


def test_bundled_font_covers_gb2312_and_every_character_of_the_packages():
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the packages' files")
    mapped = {chr(code) for code in TTFont(BUNDLED_FONT, lazy=True).getBestCmap()}
    assert gb2312_characters() <= mapped
    missing = characters_in(package_text_files(REPO_ROOT)) - mapped
    assert not missing, (
        f"rerun `python -m data_zh.fonts.subset`: {''.join(sorted(missing))!r} not in the font"
    )


def test_installed_cjk_font_comes_first_when_present():
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    families = cjk_font_families(system_fonts=True)
    if "WenQuanYi Zen Hei" in installed:
        assert families[0] == "WenQuanYi Zen Hei"
    else:
        assert BUNDLED_FAMILY in families
    assert cjk_font_families(system_fonts=False)[0] == BUNDLED_FAMILY
