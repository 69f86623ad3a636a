"""One test of "is this a Chinese ideograph", checked at the edges of every block it accepts."""

from __future__ import annotations

import re

import pytest

from data_zh.text.cjk import CJK_IDEOGRAPH_BLOCKS, CJK_RANGES, has_cjk, is_cjk_char

EDGES_IN = (0x3400, 0x4DBF, 0x4E00, 0x9FFF, 0xF900, 0xFAFF, 0x20000, 0x2A6DF, 0x30000, 0x3FFFF)
EDGES_OUT = (0x33FF, 0x4DC0, 0x4DFF, 0xA000, 0xF8FF, 0xFB00, 0x1FFFF, 0x40000)
NOT_IDEOGRAPHS = "，。、（）：？！ 　「」⺀⼀ぁアㄱ가aZ09"


@pytest.mark.parametrize("code", EDGES_IN, ids=hex)
def test_block_edges_are_ideographs(code):
    assert is_cjk_char(chr(code))
    assert has_cjk(f"x{chr(code)}y")
    assert re.fullmatch(f"[{CJK_RANGES}]", chr(code))


@pytest.mark.parametrize("code", EDGES_OUT, ids=hex)
def test_just_outside_the_blocks_is_not(code):
    assert not is_cjk_char(chr(code))
    assert not has_cjk(f"x{chr(code)}y")
    assert re.fullmatch(f"[{CJK_RANGES}]", chr(code)) is None


def test_punctuation_kana_hangul_and_radicals_are_not_ideographs():
    assert not has_cjk(NOT_IDEOGRAPHS)
    assert not any(is_cjk_char(char) for char in NOT_IDEOGRAPHS)
    assert has_cjk("甲状腺") and has_cjk("T2 低回声")


def test_blocks_are_ordered_and_disjoint():
    bounds = [code for block in CJK_IDEOGRAPH_BLOCKS for code in block]
    assert bounds == sorted(bounds)
    assert all(first <= last for first, last in CJK_IDEOGRAPH_BLOCKS)
