"""Behaviour pins of the shipped ``ultra-tiny-zh``: what a refactor must leave exactly as it is.

Three things are pinned: the shipped ``config.json`` loads to the same resolved config; the chat
of a single-turn, a multi-turn and a video request encodes to the same ``input_ids`` (and labels,
attention mask, image-token positions) through the public front door; and the README's example
table is what the model answers, greedily, to each listed file and question.

The pins in ``tests/fixtures/behaviour_pin.json`` come from :func:`pinned_behaviour`. Regenerate
them only when a change of behaviour is intended: ``python tests/test_behaviour_pin.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "behaviour_pin.json"
README = REPO_ROOT / "README.md"
EXAMPLE_ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| (?P<question>[^|]+) \| (?P<answer>[^|]+) \|")
QUESTION = "图像中是否可见病灶？"
FOLLOW_UP = "该病灶是良性还是恶性？"


def model_dir() -> Path:
    from ultra.resources import embedded_model_dir

    return embedded_model_dir()


pytestmark = pytest.mark.skipif(
    not (model_dir() / "model.safetensors").is_file(), reason="the embedded model has not been trained yet"
)


def resolved_config() -> dict[str, Any]:
    """The shipped config as loaded, ``vision`` in its validated ``FusionConfig`` form (defaults filled),
    so the pin holds whether ``vision`` is kept as a dict or as a typed sub-config."""
    from fusion import FusionConfig
    from ultra.model import UltraConfig

    config = UltraConfig.from_pretrained(model_dir()).to_dict()
    config.pop("transformers_version", None)
    config["vision"] = FusionConfig.model_validate(config["vision"]).model_dump(mode="json")
    return json.loads(json.dumps(config))  # the JSON form, as the pin file holds it


def pinned_requests() -> dict[str, Any]:
    """Named requests: one image + a question; image, question, answer, follow-up; a video clip."""
    from ultra.answerer import Request, Turn
    from ultra.media import read_image
    from ultra.resources import examples_dir

    image = read_image(examples_dir() / "busi" / "benign-1.png")
    second = read_image(examples_dir() / "busi" / "malignant-1.png")
    return {
        "single_turn": Request(QUESTION, [image]),
        "multi_turn": Request(
            FOLLOW_UP, history=[Turn("user", QUESTION, [image]), Turn("assistant", "是")]
        ),
        "multi_turn_new_image": Request(
            "这张呢？",
            [second],
            history=[
                Turn("user", QUESTION, [image]),
                Turn("assistant", "是"),
                Turn("user", FOLLOW_UP),
                Turn("assistant", "良性"),
            ],
        ),
        "video": Request(QUESTION, video_frames=[image, second]),
    }


def encoded_requests(answerer: Any) -> dict[str, Any]:
    """Per request: prompt ids, image/video token positions, and the labels of a scored answer;
    plus the left-padded batch of all of them (ids and attention mask) and a training example."""
    from ultra.answerer.inputs import collate_requests, encode_request

    model, processor = answerer.model, answerer.processor
    requests = pinned_requests()
    pins: dict[str, Any] = {}
    encoded = []
    for name, request in requests.items():
        prompt = answerer.encode(request)
        encoded.append(prompt)
        ids = prompt.input_ids.tolist()
        scored = encode_request(model, processor, request, answer="良性")
        pins[name] = {
            "input_ids": ids,
            "image_positions": [i for i, t in enumerate(ids) if t == processor.image_token_id],
            "video_positions": [i for i, t in enumerate(ids) if t == processor.video_token_id],
            "scored_input_ids": scored.input_ids.tolist(),
            "scored_labels": scored.labels.tolist(),
        }
    batch = collate_requests(model, processor, encoded, padding_side="left")
    pins["batch"] = {
        "input_ids": batch["input_ids"].tolist(),
        "attention_mask": batch["attention_mask"].tolist(),
    }
    messages = [
        {"role": "user", "content": "<image>\n" + QUESTION},
        {"role": "assistant", "content": "是"},
        {"role": "user", "content": FOLLOW_UP},
        {"role": "assistant", "content": "良性"},
    ]
    image = requests["single_turn"].images[0]
    example = processor.encode_example(messages, [image])
    pins["training_example"] = {
        "input_ids": example["input_ids"].tolist(),
        "labels": example["labels"].tolist(),
    }
    return pins


def readme_examples() -> list[dict[str, str]]:
    """The rows of README.md's examples table (file, question, the model's answer)."""
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- examples:start -->", 1)[1].split("<!-- examples:end -->", 1)[0]
    rows = [EXAMPLE_ROW.match(line) for line in block.splitlines()]
    return [{k: v.strip() for k, v in row.groupdict().items()} for row in rows if row]


def readme_answers(answerer: Any) -> list[str]:
    """Greedy answers to the README's rows, as ``ultra.release.examples`` draws them (16 new tokens)."""
    from ultra.answerer import GenerationSettings, Request
    from ultra.media import read_image

    settings = GenerationSettings(max_new_tokens=16)
    requests = [
        Request(row["question"], [read_image(REPO_ROOT / row["file"])], settings=settings)
        for row in readme_examples()
    ]
    return [answer.text for answer in answerer.answer(requests, batch_size=4)]


def pinned_behaviour(answerer: Any) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    return {
        "_about": (
            f"Generated from commit {commit} by tests/test_behaviour_pin.py:pinned_behaviour "
            "(regenerate: python tests/test_behaviour_pin.py, only when a change of behaviour is intended)."
        ),
        "config": resolved_config(),
        "requests": encoded_requests(answerer),
    }


@pytest.fixture(scope="module")
def answerer():
    from ultra.answerer import Answerer

    return Answerer.load("tiny-zh")


@pytest.fixture(scope="module")
def encoded(answerer) -> dict[str, Any]:
    return encoded_requests(answerer)


@pytest.fixture(scope="module")
def pins() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_shipped_config_loads_as_pinned(pins):
    assert resolved_config() == pins["config"]


def test_shipped_config_builds_the_model(answerer, pins):
    assert answerer.model.config.tokens_per_image == pins["config"]["tokens_per_image"]
    assert answerer.model.vision_tower.num_tokens == pins["config"]["tokens_per_image"]


@pytest.mark.parametrize(
    "name", ["single_turn", "multi_turn", "multi_turn_new_image", "video", "batch", "training_example"]
)
def test_encoded_requests_are_as_pinned(encoded, pins, name):
    assert encoded[name] == pins["requests"][name]


def test_pinned_requests_hold_their_placeholders(pins):
    single = pins["requests"]["single_turn"]
    assert len(single["image_positions"]) == pins["config"]["tokens_per_image"]
    assert len(pins["requests"]["multi_turn_new_image"]["image_positions"]) == 2 * len(single["image_positions"])
    assert len(pins["requests"]["video"]["video_positions"]) == pins["config"]["video_tokens"]


def test_readme_examples_are_what_the_model_answers(answerer):
    rows = readme_examples()
    assert len(rows) == 12
    assert readme_answers(answerer) == [row["answer"] for row in rows]


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    from ultra.answerer import Answerer

    payload = pinned_behaviour(Answerer.load("tiny-zh"))
    FIXTURE.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE}")
