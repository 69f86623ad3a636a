"""``distill``: train the screening student (``screening``) to match the VLM teacher's image weights.

Per report: ``T^2 * KL(teacher weights || student weights)`` at temperature T, plus
``label_weight`` times the relevance cross-entropy when the record marks the described image
(``extra["relevant"]``, with its near-duplicates ``extra["duplicates"]``). The VLM is frozen: the
teacher's scores and the backbone's pooled features are computed once per report, so the stage
only trains the student, a side module checkpointed with the run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ultra.config_io import parse_config
from ultra.train.data import LoadFailure
from ultra.train.loop import StagePlan
from ultra.train.objectives.base import Objective, StageContext
from ultra.train.supervision import find_vision_fusion

logger = logging.getLogger(__name__)

STUDENT_KEY = "screening_student"


class DistillOptions(BaseModel):
    """``objective_options`` of a ``distill`` stage: KL between student and teacher image weights
    per report at ``temperature``, plus ``label_weight`` times the relevance cross-entropy where
    labels exist."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=2.0, gt=0)
    label_weight: float = Field(default=1.0, ge=0)
    teacher_questions: list[str] | None = Field(
        default=None, min_length=1, description="prompts the report answers (None: the teacher's default)"
    )


def distill_options(stage_name: str, options: dict[str, Any]) -> DistillOptions:
    """Validated options; a bad one is a config error naming the stage and the field."""
    return parse_config(options, DistillOptions, f"stage {stage_name!r} (distill) objective_options")


class ReportItem(NamedTuple):
    """One report, ready for the loss: pooled backbone features ``[N, H]``, the text, the teacher's
    scores ``[N]`` and the relevance mask ``[N]`` (all False when the record has no labels)."""

    features: torch.Tensor
    report: str
    teacher: torch.Tensor
    relevant: torch.Tensor


class StudentModule(nn.Module):
    """The student as the stage's trained module (the loss calls it per report)."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, features: torch.Tensor, report: str) -> torch.Tensor:
        return self.student.scores(features, report)


def distill_loss(module: nn.Module, items: list[ReportItem], settings: DistillOptions) -> torch.Tensor:
    """Mean over the batch's reports of KD (+ the supervised term where labels exist)."""
    from screening import distillation_loss, relevance_loss

    losses = []
    for item in items:
        scores = module(item.features, item.report).float()
        loss = distillation_loss(scores, item.teacher.float(), settings.temperature)
        if settings.label_weight and bool(item.relevant.any()):
            loss = loss + settings.label_weight * relevance_loss(scores, item.relevant)
        losses.append(loss)
    return torch.stack(losses).mean()


def report_items(context: StageContext, teacher, fusion: nn.Module) -> list[ReportItem | LoadFailure]:
    """Read each report's images, score them with the teacher, pool the backbone features once."""
    from screening import pooled_features
    from ultra.media import MediaError, read_record_images

    items: list[ReportItem | LoadFailure] = []
    for record in context.records:
        report = record.extra.get("report")
        if not isinstance(report, str) or not report:
            items.append(LoadFailure(record.id, "no report text in extra['report']"))
            continue
        try:
            images = read_record_images(record, allow_outside_root=True)
        except (MediaError, OSError) as error:
            items.append(LoadFailure.of(record.id, error))
            continue
        if not images:
            items.append(LoadFailure(record.id, "a report without images"))
            continue
        labelled = {*record.extra.get("relevant", []), *record.extra.get("duplicates", [])}
        relevant = torch.tensor([index in labelled for index in range(len(images))])
        items.append(
            ReportItem(
                pooled_features(fusion, images), report, teacher.scores(report, images).float(), relevant
            )
        )
    return items


def backbone_source(name_or_path: str) -> str:
    """How a saved student names its backbone: ``tiny-zh`` for the embedded model's folder (which
    training must name by path, since the preset name there means "build from scratch"), else the
    absolute folder."""
    from ultra.resources import embedded_model_dir

    path = Path(name_or_path)
    if path.exists() and path.resolve() == embedded_model_dir().resolve():
        return "tiny-zh"
    return str(path.resolve()) if path.exists() else name_or_path


class Distill(Objective):
    """The screening student learns the teacher's weights (and the labels); the VLM stays frozen."""

    name = "distill"

    def plan(self, context: StageContext) -> StagePlan:
        from screening import new_student
        from ultra.answerer import Answerer
        from ultra.screen.teacher import TEACHER_QUESTIONS, ReportTeacher

        stage = context.stage
        if context.trainable:
            raise ValueError(
                f"stage {stage.name!r} (distill) trains only the screening student; the model stays "
                f"frozen, so set train: [] (its patterns selected {context.trainable[:3]})"
            )
        settings = distill_options(stage.name, stage.objective_options)
        _, fusion = find_vision_fusion(context.model)
        teacher = ReportTeacher(
            Answerer(context.model, context.processor), settings.teacher_questions or TEACHER_QUESTIONS
        )
        source = backbone_source(context.config.model.name_or_path)
        student = context.side_modules.get_or_create(STUDENT_KEY, lambda: new_student(fusion, source))
        items = report_items(context, teacher, fusion)
        usable = sum(not isinstance(item, LoadFailure) for item in items)
        logger.info(
            "stage %s: %d reports scored by the teacher (%d unusable)",
            stage.name,
            usable,
            len(items) - usable,
        )
        return StagePlan(
            stage=stage,
            index=context.index,
            module=StudentModule(student),
            dataset=items,
            collate=list,
            loss_fn=lambda module, batch: distill_loss(module, batch, settings),
            total_steps=context.steps_for(len(items)),
            extra={"reports": usable},
        )
