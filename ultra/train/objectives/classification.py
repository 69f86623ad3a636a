"""``classification``: the vision encoders learn the records' labels through a linear head on the
mean fused token (stage 0 for presets without pretrained parts): a temporary head, or the tower's
decision head when the labels are its decision classes."""

from __future__ import annotations

import logging
import re

import torch
from torch import nn

from data_zh.schema import Record
from ultra.train.loop import StagePlan
from ultra.train.objectives.base import Objective, StageContext
from ultra.train.supervision import (
    EncodedImageDataset,
    ImageClassifier,
    LabelledImage,
    LabelledImageDataset,
    PositionalView,
    class_weights,
    find_vision_fusion,
    labelled_images,
)
from ultra.train.validation import validate_classifier

logger = logging.getLogger(__name__)


def positional_view(dataset, order: list[int], offset: int) -> PositionalView:
    """Each sample knows its position in the stage order (it seeds the sample's augmentation)."""
    return PositionalView(dataset, order, offset)


def collate_images(fusion: nn.Module):
    """Labelled images (or their cached encoder tokens) -> ``(inputs, labels, is_encoded)``."""

    def collate(items: list) -> tuple[list[torch.Tensor], torch.Tensor, bool]:
        labels = torch.tensor([label for _, label, _ in items])
        if isinstance(items[0][0], list):
            encoded = [torch.stack([item[0][k] for item in items]) for k in range(len(items[0][0]))]
            return encoded, labels, True
        return fusion.preprocess([image for image, _, _ in items]), labels, False

    return collate


def validation_items(records: list[Record], classes: list[str], stage_name: str) -> list[LabelledImage]:
    """The validation images for a stage with these classes: none when the validation set shares
    no class with them (a phantom pre-training stage is not scored on BUSI labels); a partial
    overlap is an error, as a validation set with a class the stage never learns is a mistake."""
    labelled = {label for record in records for label in record.labels.classes}
    if not records or not labelled & set(classes):
        if records:
            logger.info(
                "stage %s: not validated (its classes %s are not the validation set's)", stage_name, classes
            )
        return []
    items, _ = labelled_images(records, classes)
    return items


class Classification(Objective):
    """Weighted cross-entropy (inverse class frequency: the loss aims at balanced accuracy).

    The head is the tower's decision head when the labels are its decision classes (it stays in
    the model); otherwise a side module, one per label set, shared by consecutive classification
    stages (probe, then fine-tune) and checkpointed with the run."""

    name = "classification"

    trains_the_tower = True

    @staticmethod
    def _decision_head(
        context: StageContext, prefix: str, fusion: nn.Module, classes: list[str]
    ) -> nn.Module | None:
        """The tower's decision head when the stage's labels are among its decision classes (it
        then stays in the model and feeds the decision token; a fold may lack a class), else None
        (a temporary side head)."""
        if fusion.decision_head is None or not set(classes) <= set(fusion.decision_classes):
            return None
        names = [f"{prefix}.decision_head.{name}" for name, _ in fusion.decision_head.named_parameters()]
        missing = [name for name in names if name not in context.trainable]
        if missing:
            raise ValueError(
                f"stage {context.stage.name!r} learns the tower's decision classes {fusion.decision_classes}, "
                f"but its train patterns leave {prefix}.decision_head.* frozen; add it to the stage's train list"
            )
        return fusion.decision_head

    def plan(self, context: StageContext) -> StagePlan:
        stage = context.stage
        prefix, fusion = find_vision_fusion(context.model)
        if getattr(fusion.config, "freeze_encoders", False) and any(
            name.startswith(f"{prefix}.encoders.") for name in context.trainable
        ):
            raise ValueError(
                f"stage {stage.name!r} trains encoders on labels, but the model's encoders are frozen "
                "(freeze_encoders=true: pretrained encoders stay as loaded); train only the projectors, "
                "fusion weights or decision head here"
            )
        outside = [name for name in context.trainable if not name.startswith(prefix + ".")]
        if outside:
            raise ValueError(
                f"stage {stage.name!r} (classification) can only train {prefix}.*, but its patterns also "
                f"select {outside[:3]}"
            )
        items, classes = labelled_images(context.records)
        head = self._decision_head(context, prefix, fusion, classes)
        if head is None:
            head_key = re.sub(r"\W", "_", f"{stage.label_key}__{'__'.join(classes)}")
            head = context.side_modules.get_or_create(
                head_key, lambda: nn.Linear(fusion.hidden_size, len(classes))
            )
        else:
            items, classes = labelled_images(context.records, fusion.decision_classes)
        frozen_encoders = not any(p.requires_grad for p in fusion.encoders.parameters())
        if frozen_encoders and stage.augmentation is None and stage.cache_frozen_image_features:
            logger.info("stage %s: encoders frozen, no augmentation; encoding each image once", stage.name)
            dataset = EncodedImageDataset(items, fusion)
        else:
            dataset = LabelledImageDataset(items, stage.augmentation, seed=context.seed)
        weights = class_weights(items, len(classes))

        def loss_fn(module: nn.Module, batch: tuple[list[torch.Tensor], torch.Tensor, bool]) -> torch.Tensor:
            inputs, labels, is_encoded = batch
            logits = module(encoded=inputs) if is_encoded else module(inputs)
            return nn.functional.cross_entropy(logits.float(), labels, weight=weights.to(logits.device))

        validate = None
        val_items = validation_items(context.validation_records, classes, stage.name)
        if val_items:

            def validate(module: nn.Module) -> dict:
                return validate_classifier(module, fusion, val_items, classes)

        logger.info(
            "stage %s: %d labelled images, classes %s%s",
            stage.name,
            len(items),
            classes,
            " (the tower's decision head)" if head is fusion.decision_head else "",
        )
        return StagePlan(
            stage=stage,
            index=context.index,
            module=ImageClassifier(fusion, head),
            dataset=dataset,
            collate=collate_images(fusion),
            loss_fn=loss_fn,
            total_steps=context.steps_for(len(items)),
            validate=validate,
            view=positional_view,
            extra={"classes": classes},
        )
