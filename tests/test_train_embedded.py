"""The shipped ``ultra-tiny-zh``: size, strict loading, deterministic answers on the bundled examples."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from ultra.inference import VQARequest, generate_answers
from ultra.media import read_image
from ultra.model import UltraForConditionalGeneration, load_model
from ultra.resources import embedded_model_dir, examples_dir

MODEL_DIR = embedded_model_dir()
pytestmark = pytest.mark.skipif(
    not (MODEL_DIR / "model.safetensors").is_file(), reason="the embedded model has not been trained yet"
)


def example_requests() -> tuple[list[str], list[VQARequest]]:
    """The questions recorded next to the weights, on the bundled example images."""
    expected = json.loads((MODEL_DIR / "example_answers.json").read_text(encoding="utf-8"))
    names, requests = [], []
    for row in expected:
        images = [read_image(examples_dir() / name) for name in row["images"]]
        names.append(row["answer"])
        requests.append(VQARequest(images=images, question=row["question"]))
    return names, requests


def test_weights_are_fp16_safetensors_within_20_mb():
    weights = MODEL_DIR / "model.safetensors"
    assert weights.stat().st_size <= 20 * 1024 * 1024
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
    model, processor = load_model("tiny-zh")
    first = generate_answers(model, processor, requests, batch_size=4, max_new_tokens=16)
    one_by_one = [generate_answers(model, processor, [r], max_new_tokens=16)[0] for r in requests]
    assert first == one_by_one
    assert first == expected
    assert all(answer.strip() for answer in first)
