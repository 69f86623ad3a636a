"""The model card's scorecard and training validation are breakdowns of ``ultra.eval``'s scorer:
hand-worked numbers, and the same answers giving the same numbers as ``ultra eval run``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from data_zh.schema import Record, qa_turns
from ultra.eval.run import score_with_baselines
from ultra.eval.score import QUESTION_TYPE, score_answers
from ultra.release.scorecard import scorecard_from_answers, scorecard_markdown
from ultra.train.validation import answer_records, validate_vqa

REPO = Path(__file__).resolve().parents[1]


def _closed(qid: str, kind: str, gold: str) -> Record:
    return Record(
        id=qid,
        source="hand",
        licence="CC0",
        specialty="breast",
        modality="US",
        language="zh",
        task="closed_vqa",
        conversations=qa_turns("问题", gold, n_images=0),
        answer_type="closed",
        extra={"question_type": kind},
    )


# (id, question type, gold, answer with images, answer with blank images)
HAND = [
    ("L1", "lesion", "是", "是", "是。"),
    ("L2", "lesion", "是", "是的。", "是的"),
    ("L3", "lesion", "是", "否", "是"),
    ("L4", "lesion", "否", "否", "是"),
    ("M1", "malignancy", "良性", "良性", "恶性"),
    ("M2", "malignancy", "恶性", "良性", "恶性"),
]
TRAIN = [("T1", "lesion", "是"), ("T2", "lesion", "是的"), ("T3", "lesion", "否")]
TRAIN += [("T4", "malignancy", "良性"), ("T5", "malignancy", "恶性"), ("T6", "malignancy", "恶性")]


def _hand_card(n_resamples: int = 200) -> dict:
    records = [_closed(qid, kind, gold) for qid, kind, gold, _, _ in HAND]
    seen = [{"id": qid, "answer": answer} for qid, _, _, answer, _ in HAND]
    blind = [{"id": qid, "answer": answer} for qid, _, _, _, answer in HAND]
    train = [_closed(qid, kind, gold) for qid, kind, gold in TRAIN]
    return scorecard_from_answers(seen, blind, records, train, n_resamples=n_resamples)


def test_scorecard_matches_hand_worked_numbers():
    card = _hand_card()
    # (run, question type) -> (correct, accuracy %, balanced accuracy %), worked out by hand:
    # lesion images: L1, L2 (是的。 = yes), L4 right; yes-recall 2/3, no-recall 1/1 -> 83.3
    # blind: L1-L3 right, L4 wrong -> 75 / (1 + 0) / 2; majority (train: yes 2 of 3 -> 是;
    # 恶性 2 of 3) answers 是 and 恶性 everywhere
    expected = {
        ("model", "lesion"): (3, 75.0, 100 * (2 / 3 + 1) / 2),
        ("model", "malignancy"): (1, 50.0, 50.0),
        ("blind", "lesion"): (3, 75.0, 50.0),
        ("blind", "malignancy"): (1, 50.0, 50.0),
        ("majority", "lesion"): (3, 75.0, 50.0),
        ("majority", "malignancy"): (1, 50.0, 50.0),
    }
    for (run, kind), (correct, acc, bacc) in expected.items():
        row = card[run]["by_question_type"][kind]
        assert (row["n_closed_correct"], row["closed_accuracy"]) == (correct, pytest.approx(acc)), (run, kind)
        assert row["closed_balanced_accuracy"] == pytest.approx(bacc), (run, kind, row)
        for key in ("closed_accuracy", "closed_balanced_accuracy"):
            low, high = row[f"{key}_ci95"]
            assert low <= row[key] <= high, (run, kind, key, row)
    # overall balanced accuracy: mean recall of yes 2/3, no 1, benign 1, malignant 0
    assert card["model"]["overall"]["closed_balanced_accuracy"] == pytest.approx(100 * (2 / 3 + 2) / 4)
    # L1, L2 differ only by punctuation (fold_text); a raw != would say 6 of 6
    assert card["image_sensitivity"] == {
        "n_compared": 6,
        "changed": 4,
        "image_sensitivity": pytest.approx(400 / 6),
    }
    table = scorecard_markdown(card)
    assert "| lesion | ultra-tiny-zh | 4 (3 correct) | 75.0 [" in table
    assert "| 83.3 [" in table.splitlines()[2]
    assert len(table.splitlines()) == 2 + 6


def _mixed_answers(records: list[Record], shift: int) -> list[dict]:
    """Deterministic mix: the gold, the gold with punctuation, another type's answer, or nothing."""
    golds = sorted({r.answer for r in records})
    rows = []
    for index, record in enumerate(records):
        choice = (index + shift) % 4
        if choice == 3:
            continue  # unanswered: both scorers count it as a miss
        answer = [record.answer, f"{record.answer}。", golds[(index + shift) % len(golds)]][choice]
        rows.append({"id": record.id, "answer": answer})
    return rows


def test_scorecard_numbers_are_the_ultra_eval_run_numbers(shared_data):
    from data_zh.builders import build_busi_instructions, build_busi_vqa

    records = build_busi_vqa(shared_data / "busi", "val")
    train = build_busi_instructions(shared_data / "busi", "train")
    seen, blind = _mixed_answers(records, 0), _mixed_answers(records, 1)
    card = scorecard_from_answers(seen, blind, records, train)
    metrics = score_with_baselines(seen, records, blind, train)
    blind_metrics = score_with_baselines(blind, records)

    assert card["model"]["overall"] == metrics["overall"]
    assert card["image_sensitivity"] == metrics["image_sensitivity"]
    for run, baseline in (("blind", "blind (blank images)"), ("majority", "majority per question type")):
        eval_row = metrics["baselines"][baseline]
        assert {key: card[run]["overall"][key] for key in eval_row} == eval_row, run
    for run, eval_metrics in (("model", metrics), ("blind", blind_metrics)):
        groups = eval_metrics["by"][QUESTION_TYPE]
        assert sorted(card[run]["by_question_type"]) == sorted(groups)
        assert sorted(groups) == ["lesion", "malignancy", "site"]
        for kind, eval_row in groups.items():
            card_row = card[run]["by_question_type"][kind]
            assert {key: card_row[key] for key in eval_row} == eval_row, (run, kind)
            assert set(card_row) - set(eval_row) == {"closed_accuracy_ci95", "closed_balanced_accuracy_ci95"}
    # the mix is not degenerate: the runs and the question types really differ
    assert len({row["closed_accuracy"] for row in card["model"]["by_question_type"].values()}) > 1
    assert card["model"]["overall"] != card["blind"]["overall"]


def test_validation_scores_are_the_scorers_per_question_type(shared_data, tiny_model):
    from data_zh.builders import build_busi_vqa

    model, processor = tiny_model
    records = build_busi_vqa(shared_data / "busi", "val")[:9]  # site, lesion, malignancy of 3 images
    kinds = sorted({r.extra["question_type"] for r in records})
    scores = validate_vqa(model, processor, records, batch_size=4, max_new_tokens=4)
    answers = answer_records(model, processor, records, batch_size=4, max_new_tokens=4)
    metrics = score_answers(answers, records, n_resamples=0, breakdowns=(QUESTION_TYPE,))
    overall_keys = ("closed_accuracy", "closed_balanced_accuracy", "answer_type_consistency")
    expected = {key: metrics["overall"][key] for key in overall_keys}
    for kind in kinds:
        row = metrics["by"][QUESTION_TYPE][kind]
        expected |= {f"{kind}_acc": row["closed_accuracy"], f"{kind}_bacc": row["closed_balanced_accuracy"]}
        expected[f"{kind}_consistency"] = row["answer_type_consistency"]
    assert scores == expected
    assert kinds == ["lesion", "malignancy", "site"]


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_validation_does_not_import_the_scorecard():
    """The scorecard builds on validation's answers; validation must not reach back (an import loop)."""
    assert "ultra.release.scorecard" not in _imported_modules(REPO / "ultra/train/validation.py")
    assert "ultra.train.validation" in _imported_modules(REPO / "ultra/release/scorecard.py")


def test_model_card_prints_the_scorecards_numbers():
    from ultra.release.model_card import CardFacts, render_model_card

    summary = {"stages": [], "wall_s": 60.0}
    text = render_model_card(CardFacts(summary, _hand_card(), "ultra train configs/tiny-zh.yaml"))
    assert scorecard_markdown(_hand_card(), ["lesion", "malignancy"]) in text
    # lesion: 83.3 balanced accuracy with images against 50.0 blind; malignancy 50.0 against 50.0
    assert "(lesion) +33.3 points" in text and "(malignancy) +0.0 points" in text
    assert "blank images): 66.7%" in text
