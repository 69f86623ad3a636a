"""``language_modeling``: next-token loss on the answers (LLM from scratch, alignment, instruction
tuning). With a vision tower that does not train in the stage, each image is encoded once."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

from ultra.train.data import FrozenFeatureCache, RecordDataset
from ultra.train.loop import StagePlan
from ultra.train.objectives.base import Objective, StageContext, register_objective
from ultra.train.supervision import find_vision_fusion
from ultra.train.validation import validate_vqa

logger = logging.getLogger(__name__)


def collate_examples(processor: Any):
    """Processor-encoded examples -> one padded batch; cached image tokens ride along as
    ``image_features`` (the loss hands them to the model instead of pixels)."""

    def collate(examples: list[dict]) -> dict:
        batch = processor.collate(examples)
        features = [tokens for example in examples for tokens in example.get("image_features") or []]
        if features:
            batch["image_features"] = features
        return batch

    return collate


def next_token_loss(module: nn.Module, batch: dict) -> torch.Tensor:
    """The model's own shifted cross-entropy over the answer tokens."""
    batch = dict(batch)
    features = batch.pop("image_features", None)
    if features is not None:
        encoded = BaseModelOutputWithPooling(pooler_output=list(features))
        return module(**batch, mm_encoder_outputs={"image": encoded}).loss
    return module(**batch).loss


@register_objective("language_modeling")
class LanguageModeling(Objective):
    """Records encoded by the processor; validation is the closed-question scorer of ``ultra.eval``."""

    def plan(self, context: StageContext) -> StagePlan:
        stage, model, processor = context.stage, context.model, context.processor
        cache = None
        if stage.cache_frozen_image_features:
            _, fusion = find_vision_fusion(model)
            if not any(parameter.requires_grad for parameter in fusion.parameters()):
                cache = FrozenFeatureCache(fusion)
                logger.info("stage %s: vision tower frozen; image tokens computed once per image", stage.name)

        validate = None
        if context.validation_records:
            settings = context.config.validation

            def validate(module: nn.Module) -> dict:
                return validate_vqa(
                    module,
                    processor,
                    context.validation_records,
                    settings.batch_size,
                    settings.max_new_tokens,
                )

        return StagePlan(
            stage=stage,
            index=context.index,
            module=model,
            dataset=RecordDataset(context.records, processor, cache),
            collate=collate_examples(processor),
            loss_fn=next_token_loss,
            total_steps=context.steps_for(len(context.records)),
            validate=validate,
        )
