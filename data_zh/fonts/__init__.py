"""The one place that picks the fonts of every chart, so Chinese labels render on any machine.

An installed CJK font is used when present (WenQuanYi Zen Hei first, Debian's ``fonts-wqy-zenhei``);
otherwise the bundled subset of Noto Sans CJK SC (``NotoSansCJKsc-ultra-subset.ttf``, SIL OFL, made
by ``python -m data_zh.fonts.subset``), which is registered with matplotlib's font manager when a chart
is drawn. DejaVu Sans, which ships with matplotlib, comes last for symbols the subset lacks, so
matplotlib's per-glyph fallback never reaches a font without the glyph. Charts apply the settings
through :mod:`data_zh.figures` (``rc_context`` around each figure); matplotlib's global settings are
never rewritten.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED_FONT = Path(__file__).resolve().parent / "NotoSansCJKsc-ultra-subset.ttf"
BUNDLED_FAMILY = "Noto Sans CJK SC Ultra Subset"

SYSTEM_CJK_FAMILIES = (
    "WenQuanYi Zen Hei",
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Noto Sans CJK JP",
    "SimHei",
    "Microsoft YaHei",
)
SYMBOL_FALLBACK_FAMILY = "DejaVu Sans"
_WEIGHT_KEYS = ("font.weight", "axes.titleweight", "figure.titleweight", "axes.labelweight")

__all__ = [
    "BUNDLED_FAMILY",
    "BUNDLED_FONT",
    "SYSTEM_CJK_FAMILIES",
    "cjk_font_families",
    "cjk_font_family",
    "cjk_rc_params",
    "register_bundled_font",
]


def register_bundled_font() -> str:
    """Make the bundled subset known to matplotlib (once per process); returns its family name."""
    from matplotlib import font_manager

    if not any(entry.fname == str(BUNDLED_FONT) for entry in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(str(BUNDLED_FONT))
    return BUNDLED_FAMILY


def cjk_font_families(system_fonts: bool = True) -> list[str]:
    """Font families for Chinese charts, best first: the first installed CJK font (only when
    ``system_fonts``), the bundled subset, then DejaVu Sans for the symbols the subset lacks.

    Fallbacks without the first family's weight are left out: matplotlib would warn on every label
    (WenQuanYi has only weight 500, the others 400)."""
    from matplotlib import font_manager

    bundled = register_bundled_font()
    installed = {entry.name for entry in font_manager.fontManager.ttflist} if system_fonts else set()
    system = [family for family in SYSTEM_CJK_FAMILIES if family in installed][:1]
    first, *fallbacks = [*system, bundled, SYMBOL_FALLBACK_FAMILY]
    weight = _family_weight(first)
    return [first, *(family for family in fallbacks if weight in _family_weights(family))]


def cjk_font_family(system_fonts: bool = True) -> str:
    """The family that draws the Chinese labels."""
    return cjk_font_families(system_fonts)[0]


def _family_weights(family: str) -> list[int]:
    from matplotlib import font_manager

    return sorted({entry.weight for entry in font_manager.fontManager.ttflist if entry.name == family})


def _family_weight(family: str) -> int:
    """The weight a family is drawn in: regular (400) when it has it, else its one weight."""
    weights = _family_weights(family)
    return 400 if 400 in weights or not weights else weights[0]


def cjk_rc_params(system_fonts: bool = True) -> dict:
    """matplotlib rc settings for charts with Chinese labels, for ``matplotlib.rc_context``.

    ``system_fonts=False`` ignores installed CJK fonts (what a machine without them sees)."""
    families = cjk_font_families(system_fonts)
    params: dict = {"axes.unicode_minus": False, "font.family": families}
    params.update(dict.fromkeys(_WEIGHT_KEYS, _family_weight(families[0])))
    return params
