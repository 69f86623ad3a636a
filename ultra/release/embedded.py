"""The embedded ``ultra-tiny-zh`` from a finished run: copy the weights and tokenizer into the
package (after the licence gate), score it on the BUSI validation split against the majority and
blind baselines and in the held-out wordings, and record its answers on the bundled examples.
``ultra release`` drives it; :mod:`ultra.release.model_card` writes the card.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from ultra.release.scorecard import scorecard
from ultra.release.shippable import check_shippable, read_training_data
from ultra.resources import examples_dir

logger = logging.getLogger(__name__)

MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
)
EXAMPLE_QUESTIONS = [
    ("busi/benign-1.png", "图像中是否可见病灶？"),
    ("busi/benign-1.png", "该病灶是良性还是恶性？"),
    ("busi/malignant-1.png", "图像中是否可见病灶？"),
    ("busi/malignant-1.png", "该病灶是良性还是恶性？"),
    ("busi/normal-1.png", "图像中是否可见病灶？"),
    ("busi/normal-2.png", "这张超声图像的检查部位是哪里？"),
    ("busi/malignant-2.png", "请用一句话给出这张乳腺超声图像的超声提示。"),
    ("dicom/us_rgb_color.dcm", "这张图像是什么成像方式？"),
]


def install(run_dir: Path, destination: Path) -> Path:
    """Copy the exported model (and the run's loss curve) into the package folder, after the
    licence gate: a run that trained on non-commercial data (or has no provenance) is refused
    before anything is copied."""
    import torch

    from ultra.model import UltraForConditionalGeneration

    check_shippable(read_training_data(run_dir))
    final = run_dir / "final"
    destination.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (final / name).is_file() and name != "model.safetensors":
            shutil.copy2(final / name, destination / name)
    # re-saved in float16 through save_pretrained, so tied embeddings are stored once
    model = UltraForConditionalGeneration.from_pretrained(final, dtype=torch.float16)
    model.save_pretrained(destination)
    shutil.copy2(run_dir / "loss_curve.png", destination / "loss_curve.png")
    return destination


def example_answers(model: Any, processor: Any) -> list[dict]:
    """The model's greedy answers on the bundled examples (the determinism test compares them)."""
    from ultra.answerer import Answerer, GenerationSettings, Request
    from ultra.media import read_image

    settings = GenerationSettings(max_new_tokens=16)
    requests = [
        Request(question, [read_image(examples_dir() / name)], settings=settings)
        for name, question in EXAMPLE_QUESTIONS
    ]
    answers = Answerer(model, processor).answer(requests, batch_size=4)
    return [
        {"images": [name], "question": question, "answer": answer.text}
        for (name, question), answer in zip(EXAMPLE_QUESTIONS, answers, strict=True)
    ]


def evaluate(model: Any, processor: Any, busi_root: Path) -> dict[str, Any]:
    """Scorecard on the BUSI-zh validation questions; majority answers from the train split."""
    from data_zh.builders import build_busi_instructions, build_busi_vqa

    records = build_busi_vqa(busi_root, "val")
    train = build_busi_instructions(busi_root, "train")
    return scorecard(model, processor, records, train, batch_size=16, max_new_tokens=8)


def heldout_scores(model: Any, processor: Any, busi_root: Path) -> dict[str, Any]:
    """The val images asked in the held-out wordings (never in training): per question type
    balanced accuracy with intervals and answer-type consistency — does the model read the question?"""
    from data_zh.builders import build_busi_vqa
    from ultra.eval.score import QUESTION_TYPE, score_answers
    from ultra.train.validation import answer_records

    records = build_busi_vqa(busi_root, "val", wordings="heldout")
    answers = answer_records(model, processor, records, batch_size=16, max_new_tokens=8)
    metrics = score_answers(answers, records, breakdowns=(QUESTION_TYPE,), group_resamples=1000)
    return {
        "overall": metrics["overall"],
        "by_question_type": metrics["by"][QUESTION_TYPE],
        "answers": answers,
    }
