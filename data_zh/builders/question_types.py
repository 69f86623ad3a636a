"""Text-only instructions that teach the question types behind the BUSI wordings.

Two kinds of exchange, no image needed: what form of answer a question wants (是或否, 良性或恶性,
a site, one sentence), and the answer itself once the finding is stated in words (已知图像中未见
病灶 + 良性还是恶性？ -> 未见明确病灶). The LLM learns the answer type from the question, not from
keywords of a few templates. Only the training wordings are used; the held-out set stays unseen.
"""

from __future__ import annotations

from data_zh.builders.busi import NO_LESION_ANSWER, SITE_ANSWER, lesion_answer, malignancy_answer
from data_zh.builders.phrasing import pick
from data_zh.builders.wordings import WordingSet, fold_wording, question_wordings
from data_zh.schema import Labels, Record, qa_turns

QUESTION_TYPE_LICENCE = "Apache-2.0 (written for ultra from BUSI's label vocabulary; no dataset content)"
ANSWER_FORMS = {
    "site": "回答检查部位，例如乳腺。",
    "lesion": "这是是非题，回答是或否。",
    "malignancy": f"回答良性或恶性；图像中未见病灶时回答{NO_LESION_ANSWER}。",
    "impression": "用一句话给出超声提示。",
}
FORM_PROMPTS = (
    "下面这个问题应该用什么形式回答？问题：{question}",
    "请说明回答以下问题时答案的类型。{question}",
    "这个问题要求怎样的答案：{question}",
)
FINDINGS = {
    "normal": ("已知这张乳腺超声图像中未见病灶。", "图像所见：乳腺未见明确局灶性病变。"),
    "benign": ("已知这张乳腺超声图像中可见一个良性病灶。", "图像所见：乳腺内局灶性病灶，考虑良性。"),
    "malignant": ("已知这张乳腺超声图像中可见一个恶性病灶。", "图像所见：乳腺内局灶性病灶，考虑恶性。"),
}
_STATED_ANSWER = {
    "site": lambda label: SITE_ANSWER,
    "lesion": lesion_answer,
    "malignancy": malignancy_answer,
}


def _record(kind: str, index: int, prompt: str, answer: str, task: str, label: str | None) -> Record:
    return Record(
        id=f"busi-qtype-{task}-{kind}-{index}",
        source="busi-question-types",
        licence=QUESTION_TYPE_LICENCE,
        specialty="breast",
        modality="US",
        language="zh",
        conversations=qa_turns(prompt, answer, n_images=0),
        answer_type="closed" if task == "stated" and kind != "impression" else "open",
        task="closed_vqa" if task == "stated" else "open_vqa",
        labels=Labels(classes=[label] if label else []),
        extra={"question_type": f"{kind}_{task}", "text_only": True},
    )


def build_question_type_instructions(wordings: WordingSet = "train") -> list[Record]:
    """For every wording of the set: one answer-form exchange and, for the closed kinds, one
    stated-finding exchange whose finding (normal / benign / malignant) is drawn by a stable hash."""
    records = []
    for kind, form in ANSWER_FORMS.items():
        for index, question in enumerate(question_wordings(kind, wordings)):
            key = fold_wording(question)
            prompt = pick(FORM_PROMPTS, key, "form").format(question=question)
            records.append(_record(kind, index, prompt, form, "form", None))
            if kind in _STATED_ANSWER:
                label = pick(tuple(FINDINGS), key, "label")
                finding = pick(FINDINGS[label], key, "finding")
                answer = _STATED_ANSWER[kind](label)
                records.append(_record(kind, index, f"{finding}{question}", answer, "stated", label))
    return records
