"""Closed-answer probabilities in ``ultra eval``: AUC, sensitivity/specificity, ECE and the
reliability bins against hand-computed cases, the temperature fit, and one ``ultra eval run`` on
three real BUSI images with the embedded model."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from data_zh.candidates import CANDIDATE_SETS
from ultra.answerer import softmax
from ultra.cli.main import app
from ultra.eval.calibration import (
    TEMPERATURE_BOUNDS,
    fit_temperature,
    gold_index,
    nll,
    probability_metrics,
    read_temperature,
    reliability_chart,
)
from ultra.eval.metrics import expected_calibration_error, reliability_bins, roc_auc, sensitivity_specificity
from ultra.resources import embedded_model_dir

TOL = 16 * sys.float_info.epsilon


def test_auc_by_hand_with_ties_and_one_class():
    # positives 0.9, 0.4; negatives 0.4, 0.1: pairs (0.9>0.4, 0.9>0.1, 0.4=0.4 half, 0.4>0.1) = 3.5 / 4
    assert roc_auc([1, 1, 0, 0], [0.9, 0.4, 0.4, 0.1]) == pytest.approx(0.875, abs=TOL)
    assert roc_auc([1, 0], [0.2, 0.8]) == 0.0
    assert roc_auc([1, 1], [0.2, 0.8]) is None


def test_sensitivity_and_specificity_by_hand():
    labels = [1, 1, 1, 0, 0]
    predicted = [1, 0, 1, 0, 1]
    assert sensitivity_specificity(labels, predicted) == pytest.approx((2 / 3, 1 / 2), abs=TOL)
    assert sensitivity_specificity([0, 0], [0, 1]) == (None, 0.5)


def test_ece_and_bins_by_hand():
    # 15 bins of width 1/15: 0.95 and 0.99 share the last bin, 0.55 (bin 8) stands alone
    confidences = [0.95, 0.99, 0.55]
    correct = [True, False, True]
    bins = reliability_bins(confidences, correct)
    assert len(bins) == 15 and sum(b.count for b in bins) == 3
    last, middle = bins[14], bins[8]
    assert (last.count, middle.count) == (2, 1)
    assert last.confidence == pytest.approx(0.97, abs=TOL) and last.accuracy == 0.5
    expected = 2 / 3 * abs(0.5 - 0.97) + 1 / 3 * abs(1.0 - 0.55)
    assert expected_calibration_error(confidences, correct) == pytest.approx(expected, abs=TOL)
    assert reliability_bins([0.0], [False])[0].count == 1  # 0 lands in the first bin


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    true_t = 2.5
    logits = rng.normal(0, 3, size=(4000, 3))
    labels = [int(rng.choice(3, p=softmax(list(row), true_t))) for row in logits]
    fitted = fit_temperature(logits.tolist(), labels)
    assert abs(fitted - true_t) < 0.25, fitted
    assert nll(logits.tolist(), labels, fitted) <= nll(logits.tolist(), labels, 1.0)
    assert TEMPERATURE_BOUNDS[0] <= fit_temperature([[0.0, 0.0]], [0]) <= TEMPERATURE_BOUNDS[1]


def test_probability_metrics_on_hand_rows(tmp_path):
    ln = math.log
    rows = [  # lesion candidates (是, 否): gold 0 = 是 (lesion), 1 = 否
        {"kind": "lesion", "log_likelihoods": [ln(0.9), ln(0.1)], "gold": 0},
        {"kind": "lesion", "log_likelihoods": [ln(0.3), ln(0.7)], "gold": 0},
        {"kind": "lesion", "log_likelihoods": [ln(0.2), ln(0.8)], "gold": 1},
        {"kind": "malignancy", "log_likelihoods": [ln(0.6), ln(0.3), ln(0.1)], "gold": 1},
        {"kind": "malignancy", "log_likelihoods": [ln(0.7), ln(0.2), ln(0.1)], "gold": 0},
        {"kind": "malignancy", "log_likelihoods": [ln(0.1), ln(0.1), ln(0.8)], "gold": 2},
        {"kind": "lesion", "log_likelihoods": [0.0, 0.0], "gold": None},  # gold not a candidate
    ]
    metrics = probability_metrics(rows)
    lesion, malignancy = metrics["kinds"]["lesion"], metrics["kinds"]["malignancy"]
    assert lesion["n"] == 3 and lesion["positive"] == "是"
    assert lesion["auc"] == pytest.approx(1.0)  # p(是): lesions 0.9, 0.3 > normal 0.2
    assert (lesion["sensitivity"], lesion["specificity"]) == pytest.approx((0.5, 1.0))
    assert lesion["accuracy"] == pytest.approx(2 / 3)
    # malignant vs benign on the two lesion rows: p(恶性 | pair) 1/3 (malignant) > 2/9 (benign)
    assert malignancy["n_binary"] == 2 and malignancy["auc"] == pytest.approx(1.0)
    assert (malignancy["sensitivity"], malignancy["specificity"]) == pytest.approx((0.0, 1.0))
    assert lesion["ece"] == pytest.approx((abs(1 - 0.9) + abs(0 - 0.7) + abs(1 - 0.8)) / 3)
    hot = probability_metrics(rows, temperature=10.0)["kinds"]["lesion"]
    assert hot["auc"] == pytest.approx(lesion["auc"]) and hot["ece"] != pytest.approx(lesion["ece"])
    chart = reliability_chart(metrics, tmp_path / "reliability.png")
    assert chart.stat().st_size > 1000


def test_gold_answers_find_their_candidate_in_either_language():
    malignancy = CANDIDATE_SETS["malignancy"]
    assert gold_index(malignancy, "恶性") == 1
    assert gold_index(malignancy, "Malignant.") == 1
    assert gold_index(malignancy, "未见明确病灶") == 2
    assert gold_index(CANDIDATE_SETS["lesion"], "否") == 1
    assert gold_index(CANDIDATE_SETS["lesion"], "可能") is None


def test_every_candidate_set_is_usable_in_both_languages():
    for name, candidates in CANDIDATE_SETS.items():
        for language in ("zh", "en"):
            options = candidates.candidates(language)
            assert options and len(options) <= 16 and all(o.strip() for o in options), name
    assert CANDIDATE_SETS["histology"].zh == ("纤维腺瘤", "浸润性导管癌", "囊肿", "纤维囊性改变", "其他")


def test_eval_run_reports_probabilities_and_takes_a_temperature_file(shared_data, tmp_path):
    if not (embedded_model_dir() / "model.safetensors").is_file():
        pytest.skip("the embedded tiny-zh model is not in this checkout")
    from data_zh import write_records
    from data_zh.builders import build_busi_vqa

    records = [r for r in build_busi_vqa(shared_data / "busi", "val") if r.extra["question_type"] != "site"][:4]
    write_records(records, tmp_path / "busi.jsonl")
    (tmp_path / "t.json").write_text(json.dumps({"temperature": 2.0}), encoding="utf-8")
    assert read_temperature(tmp_path / "t.json") == 2.0
    base = ["eval", "run", "-d", str(tmp_path / "busi.jsonl"), "--split", "all", "--no-blind"]
    base += ["--train-split", "", "--max-new-tokens", "4"]
    result = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "out"), "--temperature-file", str(tmp_path / "t.json")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    probabilities = metrics["probabilities"]
    assert probabilities["temperature"] == 2.0 and probabilities["temperature_source"].endswith("t.json")
    assert sum(kind["n"] for kind in probabilities["kinds"].values()) == len(records)
    assert (tmp_path / "out" / "reliability.png").is_file()
    fitted = json.loads((tmp_path / "out" / "temperature.json").read_text(encoding="utf-8"))
    assert fitted["n"] == len(records) and fitted["nll_at_fitted"] <= fitted["nll_at_1"] + TOL
    both = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "x"), "--temperature", "1", "--temperature-file", "t"])
    assert both.exit_code != 0 and "not both" in both.output
