"""The model-free scorer on the real SLAKE / VQA-RAD files: canonical labels, metrics, reports."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from ultra.eval import (
    CANONICAL_TABLE,
    balanced_accuracy,
    bleu,
    bootstrap_ci,
    canonical_label,
    fit_majority_baseline,
    image_sensitivity,
    open_scores,
    rouge_l,
    score_answers,
    tokenize_answer,
    write_report,
)
from ultra.eval.canonical import is_mapped
from ultra.eval.datasets import load_eval_records

# Surface forms a SLAKE zh gold uses to say "yes" (listed here, independently of the table).
ZH_YES_GOLDS = {"是", "是的", "有", "存在", "包含", "包括", "可以", "正常", "健康", "无异常"}


@pytest.fixture(scope="module")
def slake_test(shared_data):
    return load_eval_records("slake", shared_data / "slake", "test")


@pytest.fixture(scope="module")
def slake_all(shared_data):
    return load_eval_records("slake", shared_data / "slake", "all")


@pytest.fixture(scope="module")
def vqa_rad_all(shared_data):
    return load_eval_records("vqa_rad", shared_data / "vqa_rad", "all")


def _raw_closed_answers(shared_data):
    files = ["slake/train.json", "slake/validate.json", "slake/test_shared.json"]
    files += ["vqa_rad/trainset.json", "vqa_rad/testset_shared.json"]
    for name in files:
        for item in json.loads((shared_data / name).read_text(encoding="utf-8")):
            if str(item["answer_type"]).strip().upper() == "CLOSED":
                yield name, str(item["answer"])


def test_every_closed_answer_in_slake_and_vqa_rad_is_mapped(shared_data):
    unmapped = sorted(
        {(name, answer) for name, answer in _raw_closed_answers(shared_data) if not is_mapped(answer)}
    )
    assert unmapped == [], f"closed answers missing from the canonical table: {unmapped}"


def test_zh_and_en_forms_of_the_table_give_the_same_canonical_set(slake_all):
    zh_labels = {canonical_label(form) for row in CANONICAL_TABLE for form in row.zh}
    en_labels = {canonical_label(form) for row in CANONICAL_TABLE for form in row.en}
    assert zh_labels == en_labels == {row.label for row in CANONICAL_TABLE}
    closed = [r for r in slake_all if r.answer_type == "closed"]
    by_language = {
        lang: {canonical_label(r.answer) for r in closed if r.language == lang} for lang in ("zh", "en")
    }
    assert by_language["zh"] <= en_labels and by_language["en"] <= en_labels
    # the yes/no golds of both languages land on the same two labels
    assert {"yes", "no"} <= by_language["zh"] & by_language["en"]


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("是的。", "yes"),
        ("不是，未见病灶", "no"),
        ("没有", "no"),
        ("未见", "no"),
        ("Ｙｅｓ！", "yes"),
        ("No, there is not.", "no"),
        ("nodule", "nodule"),
        ("The left lung", "left lung"),
        ("X-Ray", "x-ray"),
        ("X光", "x-ray"),
        ("不正常", "no"),
        ("无法确定", "uncertain"),
        ("看不到病灶", "no"),
        ("可以看到肿块", "yes"),
        ("良性", "benign"),
    ],
)
def test_canonical_rules(answer, label):
    assert canonical_label(answer) == label


def test_gold_answers_score_100_on_every_metric(slake_test):
    answers = [{"id": r.id, "answer": r.answer} for r in slake_test]
    overall = score_answers(answers, slake_test, n_resamples=50)["overall"]
    numbers = {
        k: v for k, v in overall.items() if k != "n" and not k.startswith("n_") and not k.endswith("ci95")
    }
    assert len(numbers) == 12  # closed 2, answer-type consistency, open 9
    assert overall["n_closed_correct"] == overall["n_closed"]
    assert overall["closed_balanced_accuracy_ci95"] == pytest.approx([100.0, 100.0])
    assert all(value == pytest.approx(100.0) for value in numbers.values()), numbers
    jieba_overall = score_answers(answers, slake_test, token_mode="jieba", n_resamples=0)["overall"]
    assert jieba_overall["open_bleu_4"] == pytest.approx(100.0)


def test_a_wrong_constant_scores_as_computed_independently(slake_test):
    zh = [r for r in slake_test if r.language == "zh"]
    metrics = score_answers([{"id": r.id, "answer": "肺"} for r in zh], zh, n_resamples=0)["overall"]
    closed = [r.answer for r in zh if r.answer_type == "closed"]
    expected_closed = sum(a in {"肺", "肺脏", "肺部"} for a in closed) / len(closed)
    opened = [r.answer for r in zh if r.answer_type == "open"]
    # recall: share of the gold's characters (Latin/digit runs count as one) that are 肺, at most one
    recalls = [min(1, gold.count("肺")) / len(tokenize_answer(gold, "zh")) for gold in opened]
    exact = sum(g == "肺" for g in opened) / len(opened)
    assert metrics["closed_accuracy"] == pytest.approx(100 * expected_closed)
    assert metrics["open_recall"] == pytest.approx(100 * sum(recalls) / len(recalls))
    assert metrics["open_exact_match"] == pytest.approx(100 * exact)
    assert 0 < metrics["open_recall"] < 100


def test_shi_for_every_zh_closed_question_scores_the_share_of_shi(slake_test):
    closed_zh = [r for r in slake_test if r.language == "zh" and r.answer_type == "closed"]
    metrics = score_answers([{"id": r.id, "answer": "是"} for r in closed_zh], closed_zh, n_resamples=0)
    share = sum(r.answer in ZH_YES_GOLDS for r in closed_zh) / len(closed_zh)
    assert 0.2 < share < 0.8
    assert metrics["overall"]["closed_accuracy"] == pytest.approx(100 * share)
    # only the yes class is ever right: balanced accuracy = 1 / number of gold classes
    classes = {canonical_label(r.answer) for r in closed_zh}
    assert metrics["overall"]["closed_balanced_accuracy"] == pytest.approx(100 / len(classes))


def test_breakdowns_cover_every_category(slake_test):
    metrics = score_answers([{"id": r.id, "answer": r.answer} for r in slake_test], slake_test, n_resamples=0)
    for category in ("language", "answer_type", "content_type", "modality", "organ"):
        groups = metrics["by"][category]
        assert sum(g["n"] for g in groups.values()) == len(slake_test)
    assert set(metrics["by"]["language"]) == {"zh", "en"}
    assert "Lung" in metrics["by"]["organ"]


def test_missing_answers_count_as_wrong(slake_test):
    half = slake_test[: len(slake_test) // 2]
    metrics = score_answers([{"id": r.id, "answer": r.answer} for r in half], slake_test, n_resamples=0)
    assert metrics["n_missing"] == len(slake_test) - len(half)
    assert metrics["overall"]["closed_accuracy"] < 100


def test_open_metric_functions_by_hand():
    assert bleu(["a", "b", "c"], ["a", "b", "d"], 2) == pytest.approx((2 / 3 * 1 / 2) ** 0.5)
    assert bleu(["左"], ["左", "肺"], 4) == pytest.approx(2.718281828 ** (1 - 2))
    assert rouge_l(["a", "x", "b"], ["a", "b"]) == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    scores = open_scores(["肺", "肺"], ["左", "肺"])
    assert (scores.recall, scores.precision) == (0.5, 0.5)
    assert tokenize_answer("T2加权，左肺") == ["t2", "加", "权", "左", "肺"]


def test_balanced_accuracy_and_bootstrap():
    gold = ["yes"] * 8 + ["no"] * 2
    assert balanced_accuracy(gold, ["yes"] * 10) == pytest.approx(0.5)
    hits = [1.0] * 70 + [0.0] * 30
    low, high = bootstrap_ci(hits, n_resamples=500, seed=3)
    assert low < 0.7 < high and high - low < 0.25
    assert bootstrap_ci(hits, n_resamples=500, seed=3) == (low, high)


def test_majority_baseline_beats_nothing_and_is_beaten_by_gold(shared_data, slake_test):
    train = load_eval_records("slake", shared_data / "slake", "train")
    baseline = fit_majority_baseline(train)
    answers = baseline.answers(slake_test)
    overall = score_answers(answers, slake_test, n_resamples=0)["overall"]
    assert 30 < overall["closed_accuracy"] < 100
    zh_closed = [r for r in train if r.language == "zh" and r.answer_type == "closed"]
    common = Counter(canonical_label(r.answer) for r in zh_closed).most_common(1)[0][0]
    assert common in {"yes", "no"}


def test_vqa_rad_and_image_sensitivity(vqa_rad_all):
    test = [r for r in vqa_rad_all if r.split == "test"]
    metrics = score_answers([{"id": r.id, "answer": "yes"} for r in test], test, n_resamples=0)
    closed = [r for r in test if r.answer_type == "closed"]
    expected = sum(r.answer.strip().lower() == "yes" for r in closed) / len(closed)
    assert metrics["overall"]["closed_accuracy"] == pytest.approx(100 * expected)
    seen = [{"id": "1", "answer": "是"}, {"id": "2", "answer": "否"}, {"id": "3", "answer": "肝"}]
    blind = [{"id": "1", "answer": "是。"}, {"id": "2", "answer": "是"}, {"id": "3", "answer": "肝"}]
    assert image_sensitivity(seen, blind)["image_sensitivity"] == pytest.approx(100 / 3)


def test_report_writes_json_markdown_and_chart(slake_test, tmp_path):
    metrics = score_answers([{"id": r.id, "answer": "是"} for r in slake_test], slake_test, n_resamples=20)
    paths = write_report(metrics, tmp_path, "SLAKE 是")
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["n_records"] == len(slake_test)
    table = paths["markdown"].read_text(encoding="utf-8")
    assert "| **overall** |" in table and "content_type: Organ" in table
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_docs_show_the_current_canonical_table():
    from pathlib import Path

    from ultra.eval import canonical_table_markdown

    docs = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
    assert canonical_table_markdown() in docs.read_text(encoding="utf-8")
