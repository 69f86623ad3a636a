"""The answer set of every closed question kind, in Chinese and English: the one table that eval
(``choose``-scored AUC and calibration), the API (``"choose": "lesion"``) and the demo read.

Each kind lists its candidates in the same order in both languages (``zh[i]`` means ``en[i]``),
so a probability can be reported per meaning whatever language was asked. ``binary`` names the
(negative, positive) pair a two-class AUC ranks: for 良恶性 only images with a lesion take part
(未见明确病灶 is neither class). BI-RADS and histology follow BUS-BRA's labels (BI-RADS 2-5; the
five histology classes of the model card) and are ready for those questions once they exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from data_zh.builders.busi import NO_LESION_ANSWER, SITE_ANSWER, lesion_answer
from data_zh.converters.busi import LABEL_ZH
from fusion.registry import Registry


@dataclass(frozen=True)
class CandidateSet:
    """The closed answers of one question kind; ``binary`` = (negative, positive) Chinese forms."""

    zh: tuple[str, ...]
    en: tuple[str, ...]
    binary: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if len(self.zh) != len(self.en):
            raise ValueError(f"{len(self.zh)} Chinese but {len(self.en)} English candidates")
        if len(set(self.zh)) != len(self.zh) or len(set(self.en)) != len(self.en):
            raise ValueError("candidates repeat within a language")
        if self.binary is not None and not set(self.binary) <= set(self.zh):
            raise ValueError(f"binary pair {self.binary} is not among the candidates {self.zh}")

    def candidates(self, language: str = "zh") -> tuple[str, ...]:
        """The answers in ``language`` (``en`` for English, Chinese otherwise)."""
        return self.en if language == "en" else self.zh

    def binary_indices(self) -> tuple[int, int] | None:
        """Positions of the (negative, positive) pair, or None for a kind without one."""
        if self.binary is None:
            return None
        return self.zh.index(self.binary[0]), self.zh.index(self.binary[1])


CANDIDATE_SETS: Registry[CandidateSet] = Registry(
    "candidate set",
    {
        "lesion": CandidateSet(
            zh=(lesion_answer("benign"), lesion_answer("normal")),
            en=("yes", "no"),
            binary=(lesion_answer("normal"), lesion_answer("benign")),
        ),
        "malignancy": CandidateSet(
            zh=(LABEL_ZH["benign"], LABEL_ZH["malignant"], NO_LESION_ANSWER),
            en=("benign", "malignant", "no definite lesion"),
            binary=(LABEL_ZH["benign"], LABEL_ZH["malignant"]),
        ),
        "site": CandidateSet(
            zh=(SITE_ANSWER, "甲状腺", "肝脏", "肾脏", "心脏", "子宫", "淋巴结"),
            en=("breast", "thyroid", "liver", "kidney", "heart", "uterus", "lymph node"),
        ),
        "birads": CandidateSet(
            zh=("BI-RADS 2类", "BI-RADS 3类", "BI-RADS 4类", "BI-RADS 5类"),
            en=("BI-RADS 2", "BI-RADS 3", "BI-RADS 4", "BI-RADS 5"),
        ),
        "histology": CandidateSet(
            zh=("纤维腺瘤", "浸润性导管癌", "囊肿", "纤维囊性改变", "其他"),
            en=("fibroadenoma", "invasive ductal carcinoma", "cyst", "fibrocystic change", "other"),
        ),
    },
)
