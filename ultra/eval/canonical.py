"""Canonical labels for closed answers, with the zh<->en table that defines them.

Closed questions are scored by mapping both the gold answer and the prediction to one canonical
label (an English string) and comparing the labels. Every row of :data:`CANONICAL_TABLE` names
the canonical label, its English surface forms and its Chinese surface forms, so the same
question asked in either language of SLAKE lands on the same label set.

Rules (documented in docs/benchmarks.md, tested in tests/test_eval_canonical.py):

1. Text is folded to a *key*: Unicode NFKC (full-width -> half-width), lower case, and every
   character that is not a letter, digit or CJK ideograph removed ("X-Ray" -> "xray",
   "是的。" -> "是的").
2. A key found in the table gives its canonical label.
3. Otherwise the longest table form that starts the answer decides: whole words for English
   (leading articles skipped, so "no, there is not" -> no, "nodule" is not "no"), characters for
   Chinese ("不是，未见病灶" -> no; "不是" wins over "是" because it is longer).
4. Otherwise the key itself is the label (free-form closed answers still match themselves).

"Normal"/正常/健康/无异常 fold to *yes* and "abnormal"/不正常/异常 to *no*: SLAKE's Chinese golds
answer "这张图片看起来正常吗?" with 正常/不正常 where the English twin answers Yes/No.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from data_zh.text.cjk import has_cjk


@dataclass(frozen=True)
class CanonicalLabel:
    """One row of the zh<->en table: a label and the surface forms that mean it."""

    label: str
    en: tuple[str, ...]
    zh: tuple[str, ...]


def _row(label: str, en: str, zh: str) -> CanonicalLabel:
    return CanonicalLabel(label, tuple(en.split("|")), tuple(zh.split("|")))


CANONICAL_TABLE: tuple[CanonicalLabel, ...] = (
    _row(
        "yes",
        "yes|yeah|yep|true|correct|normal|healthy|no abnormality|nothing abnormal|unremarkable",
        "是|是的|对|对的|正确|有|有的|存在|包含|包括|可以|能|可见|见到|可以看到|能看到|是存在的|正常|健康|无异常|未见异常",
    ),
    _row(
        "no",
        "no|nope|false|incorrect|not|absent|abnormal|unhealthy",
        "否|不是|不|没有|无|未见|未见明显|未发现|没发现|看不到|看不见|不存在|不包含|不包括|不可以|不能|不对|错|错误|不可见|不正常|异常|不健康",
    ),
    _row(
        "uncertain",
        "not sure|maybe|unsure|uncertain|cannot tell",
        "不确定|可能|也许|无法确定|无法判断|不好说",
    ),
    _row("breast", "breast|breasts", "乳腺|乳房"),
    _row("benign", "benign", "良性"),
    _row("malignant", "malignant", "恶性"),
    _row("lung", "lung|lungs", "肺|肺脏|肺部"),
    _row("left lung", "left lung", "左肺"),
    _row("right lung", "right lung", "右肺"),
    _row("liver", "liver", "肝脏|肝"),
    _row("heart", "heart", "心脏|心"),
    _row("kidney", "kidney|kidneys", "肾脏|肾"),
    _row("left kidney", "left kidney", "左肾|左肾脏"),
    _row("right kidney", "right kidney", "右肾|右肾脏"),
    _row("spleen", "spleen", "脾脏|脾"),
    _row("stomach", "stomach", "胃"),
    _row("small bowel", "small bowel|small intestine", "小肠"),
    _row("colon", "colon|large bowel|large intestine", "结肠|大肠"),
    _row("rectum", "rectum", "直肠"),
    _row("duodenum", "duodenum", "十二指肠"),
    _row("esophagus", "esophagus|oesophagus", "食管|食道"),
    _row("bladder", "bladder|urinary bladder", "膀胱"),
    _row("spinal cord", "spinal cord", "脊髓"),
    _row("white matter", "white matter", "白质"),
    _row("gray matter", "gray matter|grey matter", "灰质"),
    _row("left", "left|left side|on the left", "左侧|左|左边"),
    _row("right", "right|right side|on the right", "右侧|右|右边"),
    _row("both", "both|both sides|bilateral", "都是|两者都是|双侧|两侧|都有"),
    _row("bilateral frontal lobes", "bilateral frontal lobes", "双侧额叶"),
    _row("lower right", "lower right|right lower", "右下|右下方"),
    _row("top", "top|at the top", "顶部|上部"),
    _row("superior", "superior", "上方"),
    _row("base", "base", "底部|基底部"),
    _row("outside", "outside|exterior|external", "外部|体外"),
    _row("on top of the patient", "on top of the patient", "患者身体上方|患者上方"),
    _row("superficial to the skin", "superficial to the patient's skin|superficial to the skin", "皮肤表面"),
    _row("in the vasculature", "in the vasculature|vasculature", "血管内"),
    _row("in the bowels", "in the bowels|in the bowel", "肠道内|肠内"),
    _row("surrounding tissue", "surrounding tissue|the surrounding tissue", "周围组织"),
    _row("transverse plane", "transverse plane|transverse|axial|axial plane", "横断面|横截面|轴位|轴状面"),
    _row("coronal plane", "coronal plane|coronal", "冠状面|冠状位"),
    _row("sagittal plane", "sagittal plane|sagittal", "矢状面|矢状位"),
    _row("pa", "pa|posteroanterior|pa view", "后前位"),
    _row("ap", "ap|anteroposterior|ap view", "前后位"),
    _row("ct", "ct|ct scan|computed tomography", "CT|CT扫描|计算机断层扫描"),
    _row("mri", "mri|mr|magnetic resonance imaging", "MRI|核磁共振|磁共振"),
    _row("x-ray", "x-ray|xray|x ray|radiograph", "X光|X射线|X线"),
    _row("t1", "t1|t1 weighted|t1-weighted", "T1|T1加权"),
    _row("t2", "t2|t2 weighted|t2-weighted", "T2|T2加权"),
    _row("flair", "flair", "FLAIR|液体衰减反转恢复"),
    _row("with contrast", "with contrast|contrast|contrast enhanced|enhanced", "增强|有造影剂|使用造影剂"),
    _row(
        "without contrast",
        "without contrast|non-contrast|non-contrast ct|non-enhanced|no contrast",
        "平扫|无造影剂",
    ),
    _row("ct with gi and iv contrast", "contrast ct with gi and iv contrast", "口服及静脉造影增强CT"),
    _row("hyperdense", "hyperdense|more dense", "高密度"),
    _row("hypodense", "hypodense|less dense", "低密度"),
    _row("hyperintense", "hyperintense", "高信号"),
    _row("radiolucent", "radiolucent", "透亮|透光"),
    _row("white", "white", "白色"),
    _row("gray", "gray|grey", "灰色"),
    _row("almost the same", "almost the same|about the same|the same", "几乎相等|差不多|相同"),
    _row("diffuse", "diffuse", "弥漫|弥漫性"),
    _row("asymmetric", "asymmetric|asymmetrical", "不对称"),
    _row("heterogeneous", "heterogeneous|heterogenous", "不均匀|不均质"),
    _row("cystic", "cystic", "囊性"),
    _row("solid", "solid", "实性"),
    _row("irregular", "irregular", "不规则"),
    _row("multilobulated", "multilobulated", "多分叶|分叶状"),
    _row("enlarged", "enlarged", "增大|肿大"),
    _row("hyperinflation", "hyperinflation", "过度充气"),
    _row("pleural effusion", "pleural effusion", "胸腔积液"),
    _row("abscess", "abscess", "脓肿"),
    _row("vascular", "vascular", "血管性"),
    _row("genetic", "genetic", "遗传性"),
    _row("medical process", "medical process|medical procedure", "医疗操作"),
    _row("female", "female|woman", "女性|女"),
    _row("male", "male|man", "男性|男"),
    _row("0", "0|zero|none", "零|0个"),
    _row("1", "1|one|just one|only one", "一|一个|1个|只有一个"),
    _row("2", "2|two", "二|两|两个|2个"),
    _row("3", "3|three", "三|三个|3个"),
    _row("4", "4|four", "四|四个|4个"),
    _row("5", "5|five", "五|五个|5个"),
)

_ENGLISH_ARTICLES = ("a", "an", "the")
_WORD = re.compile(r"[0-9a-z]+")


def fold_key(text: str) -> str:
    """Fold an answer to its lookup key: NFKC, lower case, letters/digits/CJK only."""
    folded = unicodedata.normalize("NFKC", str(text)).lower()
    return "".join(ch for ch in folded if ch.isalnum())


@lru_cache(maxsize=1)
def _form_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for row in CANONICAL_TABLE:
        for form in (row.label, *row.en, *row.zh):
            key = fold_key(form)
            previous = index.setdefault(key, row.label)
            if previous != row.label:
                raise ValueError(
                    f"canonical table: form {form!r} maps to both {previous!r} and {row.label!r}"
                )
    return index


def lookup_canonical(text: str) -> str | None:
    """The canonical label of an answer that is exactly a table form, else None."""
    return _form_index().get(fold_key(text))


def _english_prefix_label(text: str) -> str | None:
    words = _WORD.findall(unicodedata.normalize("NFKC", text).lower())
    while words and words[0] in _ENGLISH_ARTICLES:
        words = words[1:]
    index = _form_index()
    for length in range(min(len(words), 6), 0, -1):
        label = index.get("".join(words[:length]))
        if label is not None:
            return label
    return None


def _chinese_prefix_label(key: str) -> str | None:
    index = _form_index()
    for length in range(min(len(key), 12), 0, -1):
        label = index.get(key[:length])
        if label is not None:
            return label
    return None


def canonical_label(text: str) -> str:
    """The canonical label of a closed answer (gold or prediction), by the module's rules 1-4."""
    key = fold_key(text)
    label = _form_index().get(key)
    if label is not None:
        return label
    prefix = _chinese_prefix_label(key) if has_cjk(key[:1]) else _english_prefix_label(text)
    return prefix if prefix is not None else key


def is_mapped(answer: str) -> bool:
    """True when a gold closed answer is a form in the table (rule 2), not a fallback."""
    return lookup_canonical(answer) is not None


def canonical_table_markdown() -> str:
    """The zh<->en table as Markdown, for docs/benchmarks.md."""
    lines = ["| canonical | English forms | 中文 forms |", "| --- | --- | --- |"]
    for row in CANONICAL_TABLE:
        lines.append(f"| {row.label} | {', '.join(row.en)} | {'、'.join(row.zh)} |")
    return "\n".join(lines)
