"""Every entry of ``OBJECTIVES`` plans a stage of the tiny random model for real: its dataset
loads a record, its collate batches it and its loss is a finite number with a gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from data_zh import Labels, Media, Record
from data_zh.schema import Preference, Turn, qa_turns
from ultra.model import build_model
from ultra.train import OBJECTIVES, LoadFailure, Objective, StageContext, TrainConfig
from ultra.train.loop import StagePlan
from ultra.train.objectives import SideModules
from ultra.train.params import apply_trainable

# the parameters each objective's stage trains (distill trains only its own student)
TRAIN = {
    "classification": ["model.vision_tower.*"],
    "language_modeling": ["model.language_model.*"],
    "dpo": ["model.language_model.*"],
    "distill": [],
}


def toy_records(folder, views: int) -> list[Record]:
    """Two labelled records of ``views`` images each, with a question, a preference pair and a
    report (each objective reads its part)."""
    rng = np.random.default_rng(views)
    made = []
    for index, (label, answer) in enumerate((("benign", "良性"), ("malignant", "恶性"))):
        paths = [folder / f"{label}-{views}-{view}.png" for view in range(views)]
        for path in paths:
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
        made.append(
            Record(
                id=f"objective-{views}-{index}",
                source="toy",
                licence="CC0",
                specialty="breast",
                modality="US",
                language="zh",
                task="preference",
                media=Media(images=[str(path) for path in paths]),
                conversations=qa_turns("该病灶是良性还是恶性？", answer, views),
                answer_type="closed",
                labels=Labels(classes=[label]),
                preference=Preference(
                    chosen=Turn(role="assistant", content=answer),
                    rejected=Turn(role="assistant", content="无法判断"),
                    judge="label",
                ),
                extra={"report": f"乳腺内见低回声结节，倾向{answer}。"},
                split="train",
            )
        )
    return made


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[int, list[Record]]:
    """By number of views: classification learns single images, distill ranks a report's views."""
    folder = tmp_path_factory.mktemp("objective-images")
    return {views: toy_records(folder, views) for views in (1, 2)}


def test_the_registry_holds_the_built_in_objectives_under_their_names() -> None:
    assert OBJECTIVES.names() == sorted(TRAIN)
    for name, cls in OBJECTIVES.items():
        assert issubclass(cls, Objective) and cls.name == name and not cls.__abstractmethods__


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_every_objective_plans_a_stage_of_the_tiny_model(name: str, records, tmp_path) -> None:
    torch.manual_seed(0)
    model, processor = build_model("debug-tiny", pretrained=False)
    model.config.projectors_trained = True  # distill's teacher answers; a random model stands in
    config = TrainConfig.model_validate(
        {
            "model": {"name_or_path": "debug-tiny"},
            "data": {"toy": {"kind": "records", "path": str(tmp_path / "unused.jsonl")}},
            "stages": [{"name": "only", "objective": name, "train": TRAIN[name], "batch_size": 2}],
            "output_dir": str(tmp_path / "run"),
        }
    )
    stage = config.stages[0]
    trainable = apply_trainable(model, stage.train)
    context = StageContext(
        config=config,
        stage=stage,
        index=0,
        model=model,
        processor=processor,
        records=records[2 if name == "distill" else 1],
        validation_records=[],
        trainable=trainable,
        side_modules=SideModules(),
        device=torch.device("cpu"),
        steps_for=lambda count: max(1, count // stage.batch_size),
    )
    plan = OBJECTIVES[name]().plan(context)
    assert isinstance(plan, StagePlan) and plan.total_steps >= 1
    items = [plan.dataset[index] for index in range(len(plan.dataset))]
    assert len(items) == len(context.records) and not any(isinstance(item, LoadFailure) for item in items), items
    loss = plan.loss_fn(plan.module, plan.collate(items))
    assert loss.dim() == 0 and math.isfinite(loss.item())
    loss.backward()
    assert any(p.grad is not None and torch.any(p.grad != 0) for p in plan.module.parameters())
