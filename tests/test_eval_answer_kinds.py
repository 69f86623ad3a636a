"""Answer-type consistency: a 是/否 question gets 是/否; 良恶性 without a lesion gets 未见明确病灶."""

from __future__ import annotations

import pytest

from data_zh.schema import Labels, Record, qa_turns
from fusion.registry import Registry, UnknownEntryError
from ultra.eval.answer_kinds import ANSWER_KINDS, NO_LESION_FORMS, answer_consistent, answer_kind
from ultra.eval.report import markdown_table
from ultra.eval.score import QUESTION_TYPE, score_answers


@pytest.mark.parametrize(
    ("gold", "prediction", "consistent"),
    [
        ("是", "良性", False),  # the case: a class given to a yes/no question
        ("是", "是", True),
        ("否", "是", True),  # wrong, but of the right kind
        ("否", "不是，", True),
        ("是", "超声", False),  # the exam type instead of 是/否
        ("否", "未见明确病灶", False),
        ("未见明确病灶", "良性", False),  # a class for an image without a lesion
        ("未见明确病灶", "未见病灶。", True),
        ("良性", "恶性", True),
        ("良性", "否", False),
        ("乳腺", "肝脏", True),
        ("乳腺", "是", False),
        ("", "是", None),
        ("左上方", "是", None),  # a gold answer of no known kind is not counted
    ],
)
def test_answer_consistency(gold, prediction, consistent):
    assert answer_consistent(gold, prediction) is consistent


def test_answer_kinds():
    assert [answer_kind(t) for t in ("是的", "否", "良性", "未见明确病灶", "CT", "乳腺", "左上方", "")] == [
        "yes_no",
        "yes_no",
        "malignancy",
        "no_lesion",
        "modality",
        "organ",
        None,
        None,
    ]


@pytest.mark.parametrize("kind", list(ANSWER_KINDS))
def test_every_label_of_every_answer_kind_has_that_kind(kind):
    """Each registered kind's labels are reached by answer_kind (none shadowed by an earlier kind
    or by the no-lesion forms), and a kind's answers are consistent with each other."""
    labels = sorted(ANSWER_KINDS[kind])
    assert labels and [answer_kind(label) for label in labels] == [kind] * len(labels)
    assert all(answer_consistent(labels[0], label) for label in labels)


def test_answer_kinds_are_a_read_only_registry():
    assert isinstance(ANSWER_KINDS, Registry) and ANSWER_KINDS.kind == "answer kind"
    with pytest.raises(UnknownEntryError, match="known: malignancy, modality, organ, yes_no"):
        ANSWER_KINDS["no_lesion"]  # found by NO_LESION_FORMS, before any registered kind
    assert all(answer_kind(form) == "no_lesion" for form in NO_LESION_FORMS)
    with pytest.raises(TypeError):
        ANSWER_KINDS["yes_no"] = frozenset()  # type: ignore[index]


def _record(key: str, question_type: str, answer: str) -> Record:
    return Record(
        id=key,
        source="busi",
        licence="CC BY 4.0",
        specialty="breast",
        modality="US",
        language="zh",
        task="closed_vqa",
        conversations=qa_turns("问题？", answer, n_images=0),
        answer_type="closed",
        labels=Labels(classes=["normal"]),
        extra={"question_type": question_type},
    )


def test_scorer_reports_consistency_overall_and_per_question_type():
    records = [
        _record("a", "lesion", "是"),
        _record("b", "lesion", "否"),
        _record("c", "lesion", "否"),
        _record("d", "malignancy_no_lesion", "未见明确病灶"),
        _record("e", "malignancy_no_lesion", "未见明确病灶"),
        _record("f", "position", "左上方"),
    ]
    answers = [
        {"id": "a", "answer": "良性"},  # flagged
        {"id": "b", "answer": "是"},  # wrong but consistent
        {"id": "c", "answer": "否"},
        {"id": "d", "answer": "良性"},  # flagged
        {"id": "e", "answer": "未见明确病灶"},
        {"id": "f", "answer": "右下方"},  # not counted: no known kind
    ]
    metrics = score_answers(answers, records, n_resamples=0, breakdowns=(QUESTION_TYPE,))
    overall, by_type = metrics["overall"], metrics["by"][QUESTION_TYPE]
    assert overall["n_typed"] == 5 and overall["answer_type_consistency"] == pytest.approx(60.0)
    assert by_type["lesion"]["answer_type_consistency"] == pytest.approx(200 / 3)
    assert by_type["malignancy_no_lesion"]["answer_type_consistency"] == pytest.approx(50.0)
    assert "answer_type_consistency" not in by_type["position"]
    table = markdown_table(metrics)
    assert "answer type" in table and "| 60.0 |" in table


def test_busi_heldout_is_an_eval_dataset(shared_data):
    from data_zh.builders import HELDOUT_WORDINGS
    from ultra.eval.datasets import load_eval_records

    records = load_eval_records("busi_heldout", shared_data / "busi")  # the val split, like busi
    heldout = {wording for wordings in HELDOUT_WORDINGS.values() for wording in wordings}
    assert records and all(record.split == "val" and record.question in heldout for record in records)
    assert [r.id for r in records] == [r.id for r in load_eval_records("busi", shared_data / "busi")]
