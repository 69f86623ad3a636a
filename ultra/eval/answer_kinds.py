"""Answer-type consistency: does an answer have the form its question asks for?

A 是/否 question answered 良性, or a 良性还是恶性 question about an image without a lesion
answered with a class, is wrong in kind, not only in content: the model matched keywords instead
of reading the question. Each closed answer is given a *kind* from its canonical label
(:mod:`ultra.eval.canonical`); an answer is consistent when its kind is the gold answer's kind.

Kinds: ``no_lesion`` (未见明确病灶 and its variants, checked first: 未见… would otherwise fold to
*no*), ``yes_no``, ``malignancy`` (良性 / 恶性), ``modality`` and ``organ``. A gold answer of no
known kind is not counted; a prediction of no known kind (超声 to a 是/否 question) is inconsistent.
"""

from __future__ import annotations

from fusion.registry import Registry
from ultra.eval.canonical import canonical_label, fold_key

NO_LESION_FORMS = (
    "未见明确病灶",
    "未见明显病灶",
    "未见病灶",
    "未见明确病变",
    "未见明显病变",
    "未见病变",
    "无明确病灶",
    "无病灶",
    "没有病灶",
    "no lesion",
    "no lesions",
    "no lesion seen",
)
ANSWER_KINDS: Registry[frozenset[str]] = Registry(
    "answer kind",
    {
        "yes_no": frozenset({"yes", "no"}),
        "malignancy": frozenset({"benign", "malignant"}),
        "modality": frozenset({"ct", "mri", "x-ray", "超声", "ultrasound"}),
        "organ": frozenset(
            {
                "breast",
                "lung",
                "left lung",
                "right lung",
                "liver",
                "heart",
                "kidney",
                "left kidney",
                "right kidney",
                "spleen",
                "stomach",
                "small bowel",
                "colon",
                "rectum",
                "duodenum",
                "esophagus",
                "bladder",
            }
        ),
    },
)
"""Kind -> the canonical labels of that kind, tried in this order (``no_lesion`` is checked before)."""
_NO_LESION_KEYS = tuple(sorted({fold_key(form) for form in NO_LESION_FORMS}, key=len, reverse=True))


def answer_kind(text: str) -> str | None:
    """The kind of a closed answer (see the module doc), or None when it is of no known kind."""
    key = fold_key(text)
    if not key:
        return None
    if key.startswith(_NO_LESION_KEYS):
        return "no_lesion"
    label = canonical_label(text)
    return next((kind for kind, labels in ANSWER_KINDS.items() if label in labels), None)


def answer_consistent(gold: str, prediction: str) -> bool | None:
    """True when the prediction has the gold answer's kind; None when the gold's kind is unknown."""
    expected = answer_kind(gold)
    if expected is None:
        return None
    return answer_kind(prediction) == expected
