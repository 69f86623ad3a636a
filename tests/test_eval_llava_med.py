"""``--compat llava-med`` / ``llava-med-2023-08`` against hand-checked LLaVA-Med run_eval.py results.

Each expectation below was worked out by hand from run_eval.py (tag v1.0.0, b9a98a7, and the
2023-08 init release, ad758b6) and its eval_metrics helpers; the comments say which quirk an
item exercises and how each version counts it.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from data_zh.schema import Record, qa_turns
from ultra.cli.main import app
from ultra.eval import score_answers
from ultra.eval.datasets import load_eval_records
from ultra.eval.llava_med import normalize_word, read_llava_med_files, score_llava_med

# (id, gold, prediction, answer_type)
ITEMS = [
    ("c1", "yes", "Yes, it is.", "CLOSED"),  # hit
    ("c2", "yes", "No.", "CLOSED"),  # says "no", lacks the gold: v1.0.0 a miss, 2023-08 skipped
    ("c3", "no", "The eyes are fine", "CLOSED"),  # "yes" inside "eyes", lacks "no": miss / skipped
    ("c4", "lung", "lung", "CLOSED"),  # right organ but no yes/no in it: a miss in both
    ("c5", "lung", "a nodule in the lung", "CLOSED"),  # "no" inside "nodule", gold inside: a hit
    ("c6", "是", "是", "CLOSED"),  # Chinese: a miss in both
    ("c7", "yes", "yes", "CLOSED "),  # answer_type with a trailing space: ignored
    ("c8", "no", "No, there is not.", "CLOSED"),  # hit
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


# rule -> (closed questions counted, yes/no accuracy); hits are c1, c5, c8 under both rules
CLOSED_BY_RULE = {
    "llava-med": (7, 100 * 3 / 7),  # c1-c6 and c8 all count
    "llava-med-2023-08": (5, 100 * 3 / 5),  # c2, c3 skipped: c1, c4, c5, c6, c8 count
}


@pytest.mark.parametrize("rule", sorted(CLOSED_BY_RULE))
def test_compat_matches_hand_checked_run_eval(tmp_path, rule):
    items = read_llava_med_files(*_write_files(tmp_path))
    result = score_llava_med(items, CANDIDATES, rule=rule)
    counted, yes_no = CLOSED_BY_RULE[rule]
    assert result["rule"] == rule
    assert result["n_closed"] == 7 and result["n_closed_counted"] == counted and result["n_open"] == 5
    assert result["yes_no_accuracy"] == pytest.approx(yes_no)
    # the open metrics are the same code in both versions
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


def test_default_rule_is_v1_0_0_and_unknown_rules_are_refused(tmp_path):
    items = read_llava_med_files(*_write_files(tmp_path))
    assert score_llava_med(items) == score_llava_med(items, rule="llava-med")
    with pytest.raises(ValueError, match="llava-med-2023-08"):
        score_llava_med(items, rule="llava-med-v2")


def test_score_answers_passes_the_rule_through(tmp_path):
    records = [
        Record(
            id=qid,
            source="hand",
            licence="CC0",
            specialty="chest",
            modality="CT",
            language="en",
            task="closed_vqa",
            conversations=qa_turns("q", gold, n_images=0),
            answer_type="closed",
        )
        for qid, gold, _, answer_type in ITEMS
        if answer_type == "CLOSED"
    ]
    answers = [{"id": qid, "answer": pred} for qid, _, pred, answer_type in ITEMS if answer_type == "CLOSED"]
    for rule, (counted, yes_no) in CLOSED_BY_RULE.items():
        result = score_answers(answers, records, compat=rule, n_resamples=0)["llava_med"]
        assert (result["rule"], result["n_closed_counted"]) == (rule, counted)
        assert result["yes_no_accuracy"] == pytest.approx(yes_no)
    with pytest.raises(ValueError, match="unknown LLaVA-Med rule"):
        score_answers(answers, records, compat="llava-med-v2")


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


@pytest.mark.parametrize(("rule_args", "yes_no"), [([], "42.86"), (["--rule", "llava-med-2023-08"], "60.00")])
def test_llava_med_command_scores_its_own_files(tmp_path, rule_args, yes_no):
    gt_path, pred_path = _write_files(tmp_path)
    (tmp_path / "candidate.json").write_text(json.dumps({"0": CANDIDATES}), encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["eval", "llava-med", str(gt_path), str(pred_path), "--candidate", str(tmp_path / "candidate.json")]
        + rule_args,
    )
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert f"yes_no_accuracy │ {yes_no}" in flat and "open_accuracy │ 40.00" in flat


def test_llava_med_command_names_an_unknown_rule(tmp_path):
    result = CliRunner().invoke(app, ["eval", "llava-med", *map(str, _write_files(tmp_path)), "--rule", "v2"])
    assert result.exit_code == 2
    assert "'v2'" in result.output and "llava-med-2023-08" in result.output
    assert "Traceback" not in result.output
