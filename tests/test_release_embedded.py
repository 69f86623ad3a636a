"""The shipped ``ultra-tiny-zh``: size, strict loading, deterministic answers on the bundled examples."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from ultra.answerer import Answerer, GenerationSettings, Request
from ultra.media import read_image
from ultra.model import UltraForConditionalGeneration
from ultra.release.shippable import MAX_RELEASE_MB
from ultra.resources import embedded_model_dir, examples_dir

MODEL_DIR = embedded_model_dir()
pytestmark = pytest.mark.skipif(
    not (MODEL_DIR / "model.safetensors").is_file(), reason="the embedded model has not been trained yet"
)


def example_requests() -> tuple[list[str], list[Request]]:
    """The questions recorded next to the weights, on the bundled example images."""
    expected = json.loads((MODEL_DIR / "example_answers.json").read_text(encoding="utf-8"))
    names, requests = [], []
    for row in expected:
        images = [read_image(examples_dir() / name) for name in row["images"]]
        names.append(row["answer"])
        requests.append(Request(row["question"], images, settings=GenerationSettings(max_new_tokens=16)))
    return names, requests


def test_weights_are_fp16_safetensors_within_the_release_budget():
    weights = MODEL_DIR / "model.safetensors"
    assert weights.stat().st_size <= MAX_RELEASE_MB * 2**20
    with safe_open(str(weights), framework="pt") as handle:
        dtypes = {handle.get_tensor(key).dtype for key in handle.keys()}  # noqa: SIM118
    assert {dtype for dtype in dtypes if dtype.is_floating_point} == {torch.float16}  # BN counters stay int64
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "MODEL_CARD.md", "loss_curve.png"):
        assert (MODEL_DIR / name).is_file(), name


def test_embedded_model_loads_strictly():
    model, info = UltraForConditionalGeneration.from_pretrained(MODEL_DIR, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert model.config.projectors_trained


def test_embedded_model_answers_the_bundled_examples_deterministically():
    expected, requests = example_requests()
    answerer = Answerer.load("tiny-zh")
    first = [answer.text for answer in answerer.answer(requests, batch_size=4)]
    one_by_one = [answerer.answer([r])[0].text for r in requests]
    assert first == one_by_one
    assert first == expected
    assert all(answer.strip() for answer in first)
