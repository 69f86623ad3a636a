"""Answer tokenisation for open-question metrics.

English answers split on whitespace after folding (NFKC, lower case, punctuation removed).
Chinese answers split by ``data_zh.text.char_tokens`` by default (one token per character, runs
of Latin letters or digits such as "T2", "CT", "12" whole); ``mode="jieba"`` uses word
segmentation instead (``data_zh.text.tokenize_zh`` with its medical user dictionary).
"""

from __future__ import annotations

from typing import Literal

from data_zh.text.cjk import has_cjk
from data_zh.text.tokenize import char_tokens, fold_text, tokenize_zh

TokenMode = Literal["char", "jieba"]

__all__ = ["TokenMode", "fold_text", "tokenize_answer"]


def tokenize_answer(text: str, language: str | None = None, mode: TokenMode = "char") -> list[str]:
    """Tokens of one answer; the language is detected from the text when not given."""
    if mode not in ("char", "jieba"):
        raise ValueError(f"unknown tokenisation mode {mode!r}; use 'char' or 'jieba'")
    folded = fold_text(text)
    chinese = has_cjk(folded) if language is None else language == "zh" or has_cjk(folded)
    if not chinese:
        return folded.split()
    if mode == "char":
        return char_tokens(text)  # folds the same way
    return [tok for tok in (t.strip() for t in tokenize_zh(folded, mode="jieba")) if tok and fold_text(tok)]
