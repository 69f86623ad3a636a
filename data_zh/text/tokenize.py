"""Chinese tokenisation: characters, or jieba with a shipped medical (ultrasound) dictionary."""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import cache, cached_property
from pathlib import Path
from typing import Literal

from data_zh.text.cjk import CJK_RANGES

logger = logging.getLogger(__name__)

MEDICAL_DICT = Path(__file__).resolve().parent / "medical_dict.txt"
_CHAR_TOKENS = re.compile(rf"[{CJK_RANGES}]|[0-9a-z]+")


class MedicalTokenizer:
    """A jieba tokenizer of its own (no global jieba state) with the medical dictionary loaded once."""

    def __init__(self, user_dicts: tuple[str | Path, ...] = (MEDICAL_DICT,)) -> None:
        self.user_dicts = tuple(Path(path) for path in user_dicts)
        for path in self.user_dicts:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: jieba user dictionary not found")

    @cached_property
    def _jieba(self):
        import jieba

        # jieba sets its own logger to DEBUG on import; follow ours, so it is quiet unless --verbose
        jieba.setLogLevel(logger.getEffectiveLevel())
        tokenizer = jieba.Tokenizer()
        for path in self.user_dicts:
            tokenizer.load_userdict(str(path))
        logger.debug("jieba ready with %d user dictionar(ies)", len(self.user_dicts))
        return tokenizer

    def cut(self, text: str) -> list[str]:
        """Words of the text, whitespace dropped."""
        return [word for word in self._jieba.lcut(text, HMM=True) if word.strip()]


@cache
def medical_tokenizer() -> MedicalTokenizer:
    """The shared default tokenizer, built on first use (a pure factory, so caching is safe)."""
    return MedicalTokenizer()


def fold_text(text: str) -> str:
    """NFKC, lower case, punctuation and symbols turned into spaces, spaces squeezed: the form in
    which answers and references are compared."""
    folded = unicodedata.normalize("NFKC", str(text)).lower()
    kept = [ch if ch.isalnum() or ch.isspace() else " " for ch in folded]
    return " ".join("".join(kept).split())


def char_tokens(text: str) -> list[str]:
    """One token per CJK ideograph of the folded text; runs of Latin letters or digits stay whole
    ("t2", "ct", "12"), since most Chinese answers are one or two characters and a whole answer
    must not count as one token. Folding drops punctuation and case, and anything else (a Greek
    or accented letter) is not a token, so scores compare what the answer says."""
    return _CHAR_TOKENS.findall(fold_text(text))


def tokenize_zh(
    text: str, mode: Literal["char", "jieba"] = "char", tokenizer: MedicalTokenizer | None = None
) -> list[str]:
    """Tokens for metrics and search; ``jieba`` keeps terms like 低回声 and BI-RADS whole."""
    if mode == "char":
        return char_tokens(text)
    if mode == "jieba":
        return (tokenizer or medical_tokenizer()).cut(text)
    raise ValueError(f"unknown tokenisation mode {mode!r}; use 'char' or 'jieba'")
