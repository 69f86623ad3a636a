"""Question wordings for the BUSI tasks: training sets (hand-written, template-generated and
paraphrased) and a committed held-out set that training never sees.

A model that has met only a few templates matches their keywords instead of reading the
question (超声 in a yes/no question answered with 超声). Many training wordings teach the
question types; the held-out wordings measure whether that generalises (``ultra eval`` scores
them as the ``busi_heldout`` dataset). The held-out lists are written out literally and a test
checks that no training wording equals one of them after folding punctuation and width.
"""

from __future__ import annotations

import unicodedata
from itertools import product
from typing import Literal

WordingSet = Literal["train", "train-v2", "heldout"]
WORDING_SETS: tuple[WordingSet, ...] = ("train", "train-v2", "heldout")
TRAINING_SETS: tuple[WordingSet, ...] = ("train", "train-v2")
QUESTION_KINDS = ("site", "lesion", "malignancy", "impression")

# The first wording of each kind is the fixed evaluation phrasing of ``build_busi_vqa`` (kept
# from the first release so scores compare across models).
_HAND_WRITTEN = {
    "site": (
        "这张超声图像的检查部位是哪里？",
        "图中显示的是哪个部位的超声检查？",
        "请问这是哪个器官的超声图像？",
        "该超声检查的部位是什么？",
        "这是对哪个部位做的超声？",
        "图像拍的是身体哪个部位？",
        "这幅图检查的是什么器官？",
    ),
    "lesion": (
        "图像中是否可见病灶？",
        "这张乳腺超声图像中有没有病灶？",
        "请判断图中是否存在局灶性病变。",
        "该超声图像是否显示病灶？请回答是或否。",
        "这张超声里能看到异常回声团块吗？",
        "超声图像上有占位吗？",
        "乳腺里有没有发现结节？",
        "这次超声检查发现病变了吗？",
    ),
    "malignancy": (
        "该病灶是良性还是恶性？",
        "图中病灶考虑良性还是恶性？",
        "请判断这个乳腺病灶的良恶性。",
        "从超声表现看，此病灶为良性还是恶性？",
        "这个肿块更像良性的还是恶性的？",
        "病灶的性质倾向良性还是恶性？",
        "超声上看，这处病变是良性还是恶性？",
    ),
    "impression": (
        "请用一句话给出这张乳腺超声图像的超声提示。",
        "请为这张图像写一句简短的超声印象。",
        "用一句话总结该乳腺超声检查的结论。",
        "这张超声的诊断提示是什么？一句话回答。",
    ),
}

# Templates: an opening, the core question, a closing instruction (each combination is a wording).
_OPENINGS = ("", "请看这张乳腺超声图像，", "根据图像，", "这张超声图里，", "从这幅超声图像看，", "请问，")
_TEMPLATES = {
    "site": (
        ("检查部位是哪里", "显示的是哪个器官", "检查的是哪个部位"),
        ("？", "？请只回答部位。"),
    ),
    "lesion": (
        ("是否可见病灶", "有没有病灶", "是否存在病灶", "能否看到局灶性病变", "是否有肿块", "有无占位性病变"),
        ("？", "？请回答是或否。", "？只回答是或否。"),
    ),
    "malignancy": (
        ("病灶是良性还是恶性", "病变考虑良性还是恶性", "肿块的良恶性如何", "病灶性质是良性还是恶性"),
        ("？", "？请回答良性或恶性。", "？若未见病灶请说明。"),
    ),
    "impression": (
        ("超声提示是什么", "请给出一句话的超声印象", "检查结论是什么"),
        ("？", "？一句话即可。"),
    ),
}

# Yes/no questions that end in 吗, the commonest spoken form, which ``train`` nearly lacks (3 of its
# 116 lesion wordings; its templates ask 是否 / 有没有). ``train-v2`` adds them. A set of its own
# rather than an edit, so the shipped model's recipe (``train``) still reproduces.
_MA_TEMPLATES = {
    "lesion": (
        ("可见病灶吗", "有病灶吗", "存在病变吗", "能看到肿块吗", "有占位性病变吗", "发现局灶性病变了吗"),
        ("？", "？请回答是或否。", "？只回答是或否。"),
    ),
}

# Never used in training: other vocabulary and sentence shapes, including the traps seen in the
# field (超声 inside a yes/no question, 是/否 requested without 是否, colloquial wording).
HELDOUT_WORDINGS: dict[str, tuple[str, ...]] = {
    "site": (
        "这次做的是哪里的B超？",
        "本图的扫查部位为？",
        "超声探头放在哪个部位？",
        "此图像属于哪一部位的检查？",
    ),
    "lesion": (
        "这张超声上看得到肿物吗？回答是或否。",
        "超声所见有局灶性异常吗？",
        "图里存不存在病灶？",
        "该乳腺超声检查是否发现了占位性病变？",
        "能在这幅图中找到病灶吗？",
        "乳腺内有没有看到低回声结节？请回答是或否。",
        "本次超声是否提示存在病灶？",
        "你在这张图上看到病变了吗？",
    ),
    "malignancy": (
        "如果有病灶，它是良性的还是恶性的？",
        "这处异常更倾向良性病变还是恶性肿瘤？",
        "请评估图中所见的良恶性。",
        "超声诊断：良性还是恶性？",
        "该区域的病变性质如何，良性或恶性？",
        "依据这张图，病灶属于良性还是恶性？",
    ),
    "impression": (
        "请写出本图的超声诊断意见。",
        "一句话描述这张乳腺超声的结论。",
        "给出这幅图像的超声检查提示。",
    ),
}


def fold_wording(text: str) -> str:
    """A wording's comparison key: NFKC, letters and ideographs only (punctuation and width folded)."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isalnum())


def _templated(templates: dict[str, tuple[tuple[str, ...], tuple[str, ...]]], kind: str) -> list[str]:
    if kind not in templates:
        return []
    cores, closings = templates[kind]
    return [f"{opening}{core}{closing}" for opening, core, closing in product(_OPENINGS, cores, closings)]


def _train_wordings(kind: str, which: WordingSet) -> tuple[str, ...]:
    """Hand-written first (so the fixed evaluation phrasing stays first), then the template
    combinations; duplicates (after folding) dropped."""
    templated = _templated(_TEMPLATES, kind)
    if which == "train-v2":
        templated += _templated(_MA_TEMPLATES, kind)
    seen: set[str] = set()
    wordings = []
    for wording in (*_HAND_WRITTEN[kind], *templated):
        key = fold_wording(wording)
        if key not in seen:
            seen.add(key)
            wordings.append(wording)
    return tuple(wordings)


def question_wordings(kind: str, which: WordingSet = "train") -> tuple[str, ...]:
    """The wordings of one question kind (``site``, ``lesion``, ``malignancy``, ``impression``)."""
    if kind not in QUESTION_KINDS:
        raise ValueError(f"unknown question kind {kind!r}; known: {', '.join(QUESTION_KINDS)}")
    if which in TRAINING_SETS:
        return _train_wordings(kind, which)
    if which == "heldout":
        return HELDOUT_WORDINGS[kind]
    raise ValueError(f"unknown wording set {which!r}; use one of {', '.join(WORDING_SETS)}")
