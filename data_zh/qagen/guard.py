"""The guard: a QA pair is kept only when its cited fact supports the answer (word overlap).

Rule (also in data_zh/README.md): the answer's content words are its jieba words (medical
dictionary, ``data_zh.text``) that hold a letter, digit or Chinese character and are not in a short
list of function words. A word is supported when it occurs in the fact's text. The pair is kept when
(1) at least ``min_support`` (default 0.6) of the content words are supported and (2) every number in
the answer occurs in the fact. An answer without content words (是 / 否 / 对) is judged by its
question's content words instead, so a yes/no question must be about the fact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from data_zh.text import normalize_zh, tokenize_zh
from data_zh.text.cjk import CJK_RANGES

MIN_SUPPORT = 0.6
FUNCTION_WORDS = frozenset(
    (
        "的",
        "了",
        "是",
        "否",
        "在",
        "有",
        "和",
        "与",
        "及",
        "或",
        "为",
        "把",
        "被",
        "对",
        "将",
        "就",
        "也",
        "都",
        "而",
        "并",
        "其",
        "该",
        "此",
        "这",
        "那",
        "一个",
        "一些",
        "吗",
        "呢",
        "吧",
        "啊",
        "什么",
        "哪些",
        "哪个",
        "如何",
        "怎样",
        "为什么",
        "因为",
        "所以",
        "是否",
        "可以",
        "需要",
        "进行",
        "使用",
        "用",
        "中",
        "上",
        "下",
        "时",
        "后",
        "前",
        "不",
        "没有",
        "无",
        "请",
        "问",
    )
)
_CONTENT = re.compile(f"[0-9A-Za-z{CJK_RANGES}]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class GuardVerdict:
    """Whether the pair is kept, and why not."""

    kept: bool
    reason: str = ""


def content_words(text: str) -> list[str]:
    """jieba words of the text that carry content (not punctuation, not function words)."""
    words = tokenize_zh(normalize_zh(text), "jieba")
    return [w for w in words if _CONTENT.search(w) and w not in FUNCTION_WORDS]


def check_support(question: str, answer: str, fact: str, min_support: float = MIN_SUPPORT) -> GuardVerdict:
    """Keep the pair only if ``fact`` supports ``answer`` by the rule in this module's docstring."""
    fact_text = normalize_zh(fact)
    missing_numbers = [n for n in _NUMBER.findall(normalize_zh(answer)) if n not in fact_text]
    if missing_numbers:
        return GuardVerdict(
            False, f"number(s) {', '.join(missing_numbers)} of the answer are not in the fact"
        )
    words, judged = content_words(answer), "answer"
    if not words:
        words, judged = content_words(question), "question (yes/no answer)"
    if not words:
        return GuardVerdict(False, "neither the answer nor the question has a content word")
    unsupported = [w for w in words if w not in fact_text]
    share = 1 - len(unsupported) / len(words)
    if share < min_support:
        return GuardVerdict(
            False,
            f"{share:.0%} of the {judged}'s words are in the fact (needs {min_support:.0%}); "
            f"not in the fact: {'、'.join(unsupported)}",
        )
    return GuardVerdict(True)
