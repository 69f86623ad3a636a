"""``Answerer.choose``: closed-answer probabilities from summed log-likelihoods, checked against
the single-pair scorer, softmax by hand, and greedy generation on the shipped model."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from PIL import Image

from data_zh.candidates import CANDIDATE_SETS
from ultra.answerer import MAX_CANDIDATES, Answerer, CandidateError, GenerationSettings, Request, softmax
from ultra.resources import embedded_model_dir, examples_dir

# Sums over many float32 terms: sqrt(eps) absorbs summation-order differences between batch shapes.
FLOAT32_TOL = float(torch.finfo(torch.float32).eps) ** 0.5
# The softmax itself runs in Python floats (float64).
FLOAT64_TOL = 16 * sys.float_info.epsilon
QUESTIONS = {"lesion": "图中是否可见病灶？", "malignancy": "该病灶是良性还是恶性？"}


@pytest.fixture(scope="module")
def embedded_answerer() -> Answerer:
    if not (embedded_model_dir() / "model.safetensors").is_file():
        pytest.skip("the embedded tiny-zh model is not in this checkout")
    return Answerer.load("tiny-zh")


@pytest.fixture(scope="module")
def busi_examples() -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in sorted((examples_dir() / "busi").glob("*.png"))]


def test_softmax_by_hand_and_under_temperature():
    assert softmax([0.0, math.log(3.0)]) == pytest.approx([0.25, 0.75], abs=FLOAT64_TOL)
    assert softmax([0.0, 2 * math.log(3.0)], temperature=2.0) == pytest.approx([0.25, 0.75], abs=FLOAT64_TOL)
    assert softmax([-1000.0, -1001.0]) == pytest.approx(softmax([0.0, -1.0]), abs=FLOAT64_TOL)
    with pytest.raises(ValueError, match="temperature"):
        softmax([0.0], temperature=0.0)


def test_probabilities_sum_to_one_and_match_the_single_scorer(embedded_answerer, busi_examples):
    for image in busi_examples[:3]:
        for kind, question in QUESTIONS.items():
            candidates = CANDIDATE_SETS[kind].candidates("zh")
            request = Request(question, [image])
            choice = embedded_answerer.choose(request, candidates, temperature=1.5)
            excess = abs(math.fsum(choice.probabilities) - 1.0)
            assert excess <= FLOAT64_TOL, f"probabilities sum to 1 ± {excess:.3g}"
            singles = [embedded_answerer.log_likelihood(request, text) for text in candidates]
            gap = max(abs(a.total - b) for a, b in zip(singles, choice.log_likelihoods, strict=True))
            assert gap <= FLOAT32_TOL, f"summed log-likelihoods differ from the single scorer by {gap:.3g}"
            assert choice.tokens == tuple(s.tokens for s in singles)
            expected = softmax([s.total for s in singles], temperature=1.5)
            worst = max(abs(a - b) for a, b in zip(expected, choice.probabilities, strict=True))
            assert worst <= FLOAT32_TOL, f"probabilities differ from softmax of the sums by {worst:.3g}"


def test_argmax_agrees_with_greedy_generation(embedded_answerer, busi_examples):
    compared = 0
    for image in busi_examples:
        for kind, question in QUESTIONS.items():
            candidates = CANDIDATE_SETS[kind].candidates("zh")
            request = Request(question, [image], settings=GenerationSettings(max_new_tokens=16))
            greedy = embedded_answerer.answer([request])[0].text.strip()
            if greedy in candidates:
                compared += 1
                assert embedded_answerer.choose(request, candidates).best == greedy
    assert compared >= len(busi_examples), f"only {compared} greedy answers were candidates"


@pytest.mark.parametrize(
    ("candidates", "reason"),
    [
        ([], "at least one"),
        (["是", ""], "candidate 1 must be a non-empty string"),
        (["是", "  "], "candidate 1 must be a non-empty string"),
        (["是", "否", "是"], "candidate 2 repeats candidate 0"),
        ([f"答案{i}" for i in range(MAX_CANDIDATES + 1)], f"at most {MAX_CANDIDATES}"),
        ("是否", "not one string"),
    ],
)
def test_unusable_candidates_are_refused_without_quoting_them(embedded_answerer, candidates, reason):
    with pytest.raises(CandidateError, match=reason) as error:
        embedded_answerer.choose(Request("图中是否可见病灶？"), candidates)
    assert "答案" not in str(error.value)
