"""Answer tokenisation for open-question metrics.

English answers split on whitespace after folding (NFKC, lower case, punctuation removed).
Chinese answers split into characters by default, because most SLAKE/BUSI answers are one or
two characters and a whole Chinese answer must not count as one token; runs of Latin letters or
digits inside Chinese text ("T2", "CT", "12") stay whole. ``mode="jieba"`` uses word
segmentation instead (``data_zh.text.tokenize_zh`` with its medical user dictionary when that
module is installed, otherwise plain jieba).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Literal

from data_zh.text.cjk import CJK_RANGES, has_cjk

TokenMode = Literal["char", "jieba"]

_CHAR_TOKEN = re.compile(rf"[{CJK_RANGES}]|[0-9a-z]+")


def fold_text(text: str) -> str:
    """NFKC, lower case, punctuation and symbols turned into spaces, spaces squeezed."""
    folded = unicodedata.normalize("NFKC", str(text)).lower()
    kept = [ch if ch.isalnum() or ch.isspace() else " " for ch in folded]
    return " ".join("".join(kept).split())


@lru_cache(maxsize=1)
def _jieba_tokenizer() -> Callable[[str], list[str]]:
    try:
        from data_zh.text.tokenize import tokenize_zh
    except ImportError:  # data_zh without its text tools: plain jieba, no medical dictionary
        import jieba

        return lambda text: list(jieba.lcut(text))
    return lambda text: list(tokenize_zh(text, mode="jieba"))


def tokenize_answer(text: str, language: str | None = None, mode: TokenMode = "char") -> list[str]:
    """Tokens of one answer; the language is detected from the text when not given."""
    if mode not in ("char", "jieba"):
        raise ValueError(f"unknown tokenisation mode {mode!r}; use 'char' or 'jieba'")
    folded = fold_text(text)
    chinese = has_cjk(folded) if language is None else language == "zh" or has_cjk(folded)
    if not chinese:
        return folded.split()
    if mode == "char":
        return _CHAR_TOKEN.findall(folded)
    return [tok for tok in (t.strip() for t in _jieba_tokenizer()(folded)) if tok and fold_text(tok)]
