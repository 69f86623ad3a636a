"""Question wordings: many for training, a committed held-out set that training never sees."""

from __future__ import annotations

import pytest

from data_zh.builders import (
    HELDOUT_WORDINGS,
    build_busi_instructions,
    build_busi_vqa,
    build_question_type_instructions,
    question_wordings,
)
from data_zh.builders.wordings import QUESTION_KINDS, TRAINING_SETS, fold_wording


@pytest.mark.parametrize("which", TRAINING_SETS)
def test_heldout_wordings_are_never_training_wordings(which):
    train = {fold_wording(w) for kind in QUESTION_KINDS for w in question_wordings(kind, which)}
    for kind in QUESTION_KINDS:
        heldout = question_wordings(kind, "heldout")
        assert heldout == HELDOUT_WORDINGS[kind] and len(heldout) >= 3
        assert not {fold_wording(w) for w in heldout} & train, kind
        assert len(question_wordings(kind, which)) >= 30, kind
    with pytest.raises(ValueError, match="unknown wording set"):
        question_wordings("lesion", "test")


def _ends_in_ma(wording: str) -> bool:
    return wording.split("？")[0].endswith("吗")


def test_train_v2_adds_ma_questions_and_keeps_everything_else():
    """train-v2 is train plus yes/no questions ending in 吗; the shipped recipe's set is unchanged."""
    train, v2 = question_wordings("lesion", "train"), question_wordings("lesion", "train-v2")
    assert v2[: len(train)] == train  # the fixed evaluation phrasing stays first
    added = v2[len(train) :]
    assert len(added) >= 100 and all(_ends_in_ma(w) for w in added)
    assert sum(_ends_in_ma(w) for w in train) < 5
    for kind in ("site", "malignancy", "impression"):
        assert question_wordings(kind, "train-v2") == question_wordings(kind, "train")


@pytest.mark.parametrize("which", TRAINING_SETS)
def test_training_data_never_holds_a_heldout_wording(shared_data, which):
    heldout = [fold_wording(w) for wordings in HELDOUT_WORDINGS.values() for w in wordings]
    records = build_busi_instructions(shared_data / "busi", "train", phrasings=5, wordings=which)
    records += build_question_type_instructions(which)
    texts = [fold_wording(turn.content) for record in records for turn in record.conversations]
    assert not [w for w in heldout if any(w in text for text in texts)]
    lesion = {r.question for r in records if r.extra["question_type"] == "lesion"}
    assert len(lesion) >= 60  # 361 images x 5 wordings drawn from the training set


def test_heldout_vqa_asks_heldout_wordings_and_no_class_without_a_lesion(shared_data):
    records = build_busi_vqa(shared_data / "busi", "val", wordings="heldout")
    fixed = build_busi_vqa(shared_data / "busi", "val")
    assert [r.id for r in records] == [r.id for r in fixed] and [r.answer for r in records] == [
        r.answer for r in fixed
    ]
    for record in records:
        kind = record.extra["question_type"].removesuffix("_no_lesion")
        assert record.question in HELDOUT_WORDINGS[kind]
    malignancy = [r for r in records if r.extra["question_type"] == "malignancy"]
    assert sum(r.answer == "未见明确病灶" for r in malignancy) == 24  # the val split's normal images
    assert {r.answer for r in malignancy} == {"良性", "恶性", "未见明确病灶"}
    assert len({r.question for r in records if r.extra["question_type"] == "lesion"}) >= 5


def test_question_type_instructions_are_text_only_and_teach_the_answer_form():
    records = build_question_type_instructions()
    assert records and all(r.media.count == 0 and "<image>" not in r.question for r in records)
    assert len({r.id for r in records}) == len(records)
    by_type = {}
    for record in records:
        by_type.setdefault(record.extra["question_type"], set()).add(record.answer)
    assert by_type["lesion_form"] == {"这是是非题，回答是或否。"}
    assert by_type["lesion_stated"] <= {"是", "否"} and by_type["malignancy_stated"] == {
        "良性",
        "恶性",
        "未见明确病灶",
    }
    stated = [r for r in records if r.extra["question_type"] == "malignancy_stated"]
    for record in stated:
        assert (record.answer == "未见明确病灶") == (record.labels.classes == ["normal"])
