"""Which characters are Chinese ideographs: the one definition every module asks.

The blocks, by Unicode code point (their full extent, so ideographs added to a block by a later
Unicode version count too):

- U+3400–U+4DBF  CJK Unified Ideographs Extension A (rare characters, names)
- U+4E00–U+9FFF  CJK Unified Ideographs (every common character)
- U+F900–U+FAFF  CJK Compatibility Ideographs (NFKC maps most onto the unified ones)
- U+20000–U+3FFFF  the Supplementary and Tertiary Ideographic Planes (Extensions B–H and the
  Compatibility Ideographs Supplement)

Radicals (U+2E80–U+2FDF), CJK punctuation (U+3000–U+303F), kana, Hangul and Yijing hexagrams
(U+4DC0–U+4DFF, between Extension A and the main block) are not ideographs.
"""

from __future__ import annotations

import re

CJK_IDEOGRAPH_BLOCKS: tuple[tuple[int, int], ...] = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3FFFF),
)
"""Inclusive (first, last) code points of the ideograph blocks above."""

CJK_RANGES = "".join(f"{chr(first)}-{chr(last)}" for first, last in CJK_IDEOGRAPH_BLOCKS)
"""The blocks as the body of a regular-expression character class: ``re.compile(f"[{CJK_RANGES}]")``."""

_IDEOGRAPH = re.compile(f"[{CJK_RANGES}]")

__all__ = ["CJK_IDEOGRAPH_BLOCKS", "CJK_RANGES", "has_cjk", "is_cjk_char"]


def is_cjk_char(char: str) -> bool:
    """True when ``char`` (one character) is a CJK ideograph."""
    code = ord(char)
    return any(first <= code <= last for first, last in CJK_IDEOGRAPH_BLOCKS)


def has_cjk(text: str) -> bool:
    """True when the text holds at least one CJK ideograph (the test for "is this Chinese")."""
    return _IDEOGRAPH.search(text) is not None
