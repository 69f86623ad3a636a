"""Labels-only training of the student: the supervised half of distillation, and on its own the
"labels-only student" ablation of the screening benchmark."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field

from data_zh.schema import Record
from fusion import VisionFusion
from fusion.pixels import read_image_file
from screening.backbone import backbone_fingerprint, pooled_features
from screening.images import ImageInput, as_rgb_image
from screening.losses import relevance_loss
from screening.student import ScreeningStudent, StudentConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledReport:
    """A report, its images, and which of them it describes."""

    report: str
    images: Sequence[ImageInput]
    relevant: frozenset[int]


class LabelTrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(30, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    reports_per_step: int = Field(8, ge=1)
    temperature: float = Field(1.0, gt=0)
    seed: int = 0


def reports_from_records(records: Iterable[Record], duplicates_relevant: bool = True) -> list[LabelledReport]:
    """``report_screening`` records (``data_zh.builders.report_benchmark``) as labelled reports.

    Near-duplicates of the described image show the same thing, so by default they count as
    relevant too (the benchmark scores them the same way, after grouping).
    """
    reports = []
    for record in records:
        if record.task != "report_screening":
            raise ValueError(f"{record.id}: task {record.task!r} is not report_screening")
        relevant = set(record.extra["relevant"])
        if duplicates_relevant:
            relevant |= set(record.extra.get("duplicates", []))
        images = [read_image_file(record.media.resolve(rel)) for rel in record.media.images]
        reports.append(LabelledReport(record.extra["report"], images, frozenset(relevant)))
    return reports


def new_student(fusion: VisionFusion, backbone_source: str | None = None, **settings) -> ScreeningStudent:
    """A fresh student sized for ``fusion`` and pinned to its weights."""
    config = StudentConfig(
        feature_size=fusion.hidden_size,
        backbone_fingerprint=backbone_fingerprint(fusion),
        backbone_source=backbone_source,
        **settings,
    )
    return ScreeningStudent(config)


def train_on_labels(
    student: ScreeningStudent,
    fusion: VisionFusion,
    reports: Sequence[LabelledReport],
    config: LabelTrainingConfig | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train the student's head and text encoder (the backbone stays frozen); returns the mean loss
    of each epoch. Backbone features are computed once per image, since they never change."""
    config = config or LabelTrainingConfig()
    if not reports:
        raise ValueError("train_on_labels: no reports")
    torch.manual_seed(config.seed)
    order = random.Random(config.seed)
    features = [
        pooled_features(fusion, [as_rgb_image(image, i) for i, image in enumerate(report.images)])
        for report in reports
    ]
    masks = [
        torch.tensor([index in report.relevant for index in range(len(report.images))]) for report in reports
    ]
    optimizer = torch.optim.AdamW(
        student.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    student.train()
    history = []
    for epoch in range(config.epochs):
        indices = list(range(len(reports)))
        order.shuffle(indices)
        total = 0.0
        for start in range(0, len(indices), config.reports_per_step):
            batch = indices[start : start + config.reports_per_step]
            loss = torch.stack(
                [
                    relevance_loss(
                        student.scores(features[i], reports[i].report), masks[i], config.temperature
                    )
                    for i in batch
                ]
            ).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        history.append(total / len(reports))
        logger.info("labels-only student: epoch %d/%d, loss %.4f", epoch + 1, config.epochs, history[-1])
        if on_epoch is not None:
            on_epoch(epoch, history[-1])
    student.eval()
    return history
