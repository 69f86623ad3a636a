"""Chinese text normalisation: one canonical spelling so metrics and dictionaries match."""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

from data_zh.text.cjk import CJK_RANGES

_CJK_PUNCT = "，。：；？！、（）"
_HALF_TO_ZH = {",": "，", ":": "：", ";": "；", "?": "？", "!": "！"}
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_SPACE_BETWEEN_CJK = re.compile(rf"(?<=[{CJK_RANGES}{_CJK_PUNCT}])[ \t]+(?=[{CJK_RANGES}{_CJK_PUNCT}])")
_SPACE_RUN = re.compile(r"[ \t\r\f\v]+")
_HALF_PUNCT_NEAR_CJK = re.compile(rf"(?<=[{CJK_RANGES}])\s*([,:;?!])|([,:;?!])\s*(?=[{CJK_RANGES}])")
_PERIOD_AFTER_CJK = re.compile(rf"(?<=[{CJK_RANGES}])\.(?!\d)")
_PARENS_AROUND_CJK = re.compile(rf"\(([^()]*[{CJK_RANGES}][^()]*)\)")


class ConverterUnavailableError(RuntimeError):
    """Traditional -> simplified conversion asked for, but its library is not installed."""


@cache
def _t2s_converter() -> Any:
    try:
        import opencc
    except ImportError:
        raise ConverterUnavailableError(
            "traditional -> simplified conversion needs the 'opencc-python-reimplemented' package "
            "(pip install opencc-python-reimplemented)"
        ) from None
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional Chinese -> simplified (OpenCC's t2s table)."""
    return _t2s_converter().convert(text)


def _half_to_zh(match: re.Match[str]) -> str:
    return _HALF_TO_ZH[match.group(1) or match.group(2)]


def normalize_zh(
    text: str,
    *,
    width: bool = True,
    punctuation: bool = True,
    whitespace: bool = True,
    simplified: bool = False,
    lowercase: bool = False,
) -> str:
    """Canonical Chinese text.

    width: full-width letters, digits and symbols -> half-width (NFKC), Chinese punctuation kept.
    punctuation: ASCII , : ; ? ! . () next to Chinese -> Chinese forms (1.5cm stays 1.5cm).
    whitespace: zero-width characters removed, runs collapsed, spaces between Chinese removed.
    simplified: traditional -> simplified; off unless asked, since it needs an extra library.
    """
    if simplified:
        text = to_simplified(text)
    if width:
        text = "".join(ch if ch in _CJK_PUNCT else unicodedata.normalize("NFKC", ch) for ch in text)
    if whitespace:
        text = _ZERO_WIDTH.sub("", text).replace("\u3000", " ")
        text = _SPACE_RUN.sub(" ", text)
        text = re.sub(r" *\n[ \n]*", "\n", text).strip()
    if punctuation:
        text = _HALF_PUNCT_NEAR_CJK.sub(_half_to_zh, text)
        text = _PERIOD_AFTER_CJK.sub("。", text)
        text = _PARENS_AROUND_CJK.sub(r"（\1）", text)
    if whitespace:
        text = _SPACE_BETWEEN_CJK.sub("", text)
    if lowercase:
        text = text.lower()
    return text
