"""The one place that finds a CJK font for matplotlib, so every chart renders Chinese labels.

Debian's ``fonts-wqy-zenhei`` (WenQuanYi Zen Hei) is preferred; it ships a single weight (500),
so the rc settings ask for that weight and matplotlib stops warning on every label.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

CJK_FONT_FAMILIES = (
    "WenQuanYi Zen Hei",
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Noto Sans CJK JP",
    "SimHei",
    "Microsoft YaHei",
)
_WEIGHT_KEYS = ("font.weight", "axes.titleweight", "figure.titleweight", "axes.labelweight")


def cjk_font_family() -> str | None:
    """The first installed CJK font family matplotlib knows, or None."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((family for family in CJK_FONT_FAMILIES if family in installed), None)


def cjk_rc_params() -> dict:
    """matplotlib rc settings for Chinese labels (empty but for the minus sign when no CJK font
    is installed; a warning then says what to install)."""
    family = cjk_font_family()
    params: dict = {"axes.unicode_minus": False}
    if family is None:
        logger.warning("no CJK font found (install fonts-wqy-zenhei); Chinese labels may show as boxes")
        return params
    params["font.family"] = [family]
    params.update(dict.fromkeys(_WEIGHT_KEYS, "medium"))
    return params
