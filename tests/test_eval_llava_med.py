"""``--compat llava-med`` against hand-checked LLaVA-Med v1.0.0 run_eval.py results.

Each expectation below was worked out by hand from run_eval.py and its eval_metrics helpers;
the comments say which quirk an item exercises.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ultra.cli.main import app
from ultra.eval import score_answers
from ultra.eval.datasets import load_eval_records
from ultra.eval.llava_med import normalize_word, read_llava_med_files, score_llava_med

# (id, gold, prediction, answer_type)
ITEMS = [
    ("c1", "yes", "Yes, it is.", "CLOSED"),  # hit
    ("c2", "yes", "No.", "CLOSED"),  # contains "no" but not the gold: skipped, not a miss
    ("c3", "no", "The eyes are fine", "CLOSED"),  # "yes" inside "eyes": skipped
    ("c4", "lung", "lung", "CLOSED"),  # right organ but no yes/no in it: a miss
    ("c5", "lung", "a nodule in the lung", "CLOSED"),  # "no" inside "nodule", gold inside: a hit
    ("c6", "是", "是", "CLOSED"),  # Chinese: a miss
    ("c7", "yes", "yes", "CLOSED "),  # answer_type with a trailing space: ignored
    ("o1", "Left Lung", "the left lung", "OPEN"),  # article dropped, case folded
    ("o2", "2", "two", "OPEN"),  # number word -> digit
    ("o3", "lung", "lung lung", "OPEN"),  # repeats: EM 1/2, F1 1, BLEU-1 1/2
    ("o4", "liver", "", "OPEN"),  # empty prediction: all 0
    ("o5", "heart", "none", "OPEN"),  # "none" -> "0": all 0
]
CANDIDATES = ["lung", "left lung", "2", "liver", "heart"]


def _write_files(tmp_path):
    gt = [
        {
            "id": qid,
            "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": gold}],
            "answer_type": answer_type,
        }
        for qid, gold, _, answer_type in ITEMS
    ]
    (tmp_path / "test.json").write_text(json.dumps(gt, ensure_ascii=False), encoding="utf-8")
    lines = [json.dumps({"question_id": qid, "text": pred}, ensure_ascii=False) for qid, _, pred, _ in ITEMS]
    (tmp_path / "answers.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path / "test.json", tmp_path / "answers.jsonl"


def test_compat_matches_hand_checked_run_eval(tmp_path):
    items = read_llava_med_files(*_write_files(tmp_path))
    result = score_llava_med(items, CANDIDATES)
    assert result["n_closed"] == 6 and result["n_closed_counted"] == 4 and result["n_open"] == 5
    assert result["yes_no_accuracy"] == pytest.approx(50.0)  # hits c1, c5 of counted c1, c4, c5, c6
    assert result["exact_match"] == pytest.approx(100 * (1 + 1 + 0.5 + 0 + 0) / 5)
    assert result["f1"] == pytest.approx(60.0)
    assert result["precision"] == pytest.approx(60.0)
    assert result["recall"] == pytest.approx(60.0)
    assert result["bleu_1"] == pytest.approx(100 * (1 + 1 + 0.5) / 5)
    assert result["bleu_2"] == pytest.approx(100 * 1 / 5)  # only o1 has a matching bigram
    assert result["bleu_3"] == pytest.approx(0.0, abs=1e-9)  # no trigram anywhere, no smoothing
    assert result["bleu"] == pytest.approx(0.0, abs=1e-9)
    # o1 ties "lung" and "left lung" and the first candidate wins; o2, o3 hit; o4, o5 fall to "lung"
    assert result["open_accuracy"] == pytest.approx(40.0)


def test_ids_must_match_in_order(tmp_path):
    gt_path, pred_path = _write_files(tmp_path)
    lines = pred_path.read_text(encoding="utf-8").splitlines()
    pred_path.write_text("\n".join(reversed(lines)) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="answers.jsonl"):
        read_llava_med_files(gt_path, pred_path)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The left lung.", "left lung"),
        ("none of the 2,3 (a)", "0 of 23"),  # a digit comma drops every punctuation mark
        ("isnt it? - yes", "isn't it yes"),
        ("." * 40 + "a", "." * 8 + "a"),  # only 32 periods are removed
        ("1.5 cm", "1.5 cm"),
    ],
)
def test_normalize_word_quirks(text, normalized):
    assert normalize_word(text) == normalized


def test_compat_and_default_disagree_on_chinese_gold(shared_data):
    records = load_eval_records("slake", shared_data / "slake", "test")
    metrics = score_answers(
        [{"id": r.id, "answer": r.answer} for r in records], records, compat="llava-med", n_resamples=0
    )
    assert metrics["overall"]["closed_accuracy"] == pytest.approx(100.0)
    compat = metrics["llava_med"]
    # zh closed golds (是/否…) never contain "yes"/"no": each is a miss under LLaVA-Med's rule
    assert compat["yes_no_accuracy"] < 60
    assert compat["recall"] == pytest.approx(100.0)


def test_llava_med_command_scores_its_own_files(tmp_path):
    gt_path, pred_path = _write_files(tmp_path)
    (tmp_path / "candidate.json").write_text(json.dumps({"0": CANDIDATES}), encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["eval", "llava-med", str(gt_path), str(pred_path), "--candidate", str(tmp_path / "candidate.json")],
    )
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "yes_no_accuracy │ 50.00" in flat and "open_accuracy │ 40.00" in flat
