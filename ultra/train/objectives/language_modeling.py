"""``language_modeling``: next-token loss on the answers (LLM from scratch, alignment, instruction
tuning). With a vision tower that does not train in the stage, each image is encoded once."""

from __future__ import annotations

import logging
import random
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import Dataset
from transformers.modeling_outputs import BaseModelOutputWithPooling

from ultra.config_io import ConfigError, parse_config
from ultra.train.data import FrozenFeatureCache, LoadFailure, RecordDataset
from ultra.train.loop import StagePlan
from ultra.train.objectives.base import Objective, StageContext
from ultra.train.supervision import find_vision_fusion
from ultra.train.validation import validate_vqa

logger = logging.getLogger(__name__)


class LanguageModelingOptions(BaseModel):
    """``objective_options`` of a ``language_modeling`` stage.

    ``grid_dropout``: the share of training images labelled with the decision classes whose grid
    tokens are zeroed, the decision token kept. On the training images an overfitted tower's grid
    and decision agree perfectly, so the LLM may learn either; on new images they can differ, and
    an LLM that reads the grid answers against its own tower. Images with the grid silenced leave
    the decision token as the only cue. Other images (DICOM modality questions) keep their grid."""

    model_config = ConfigDict(extra="forbid")

    grid_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


def language_modeling_options(stage_name: str, options: dict[str, Any]) -> LanguageModelingOptions:
    """Validated options; a bad one is a config error naming the stage and the field."""
    return parse_config(
        options, LanguageModelingOptions, f"stage {stage_name!r} (language_modeling) objective_options"
    )


class GridDropoutView(Dataset):
    """The stage order over cached-feature examples; a ``droppable`` sample (by dataset index) has
    its grid tokens zeroed with probability ``rate``, drawn from its position in the order (a
    resumed run drops the same)."""

    def __init__(
        self, dataset: Dataset, order: list[int], offset: int, droppable: list[bool], rate: float, seed: int
    ) -> None:
        self.dataset, self.order, self.offset = dataset, order, offset
        self.droppable, self.rate, self.seed = droppable, rate, seed

    def __len__(self) -> int:
        return len(self.order) - self.offset

    def __getitem__(self, position: int) -> dict | LoadFailure:
        absolute = position + self.offset
        index = self.order[absolute]
        example = self.dataset[index]
        features = None if isinstance(example, LoadFailure) else example.get("image_features")
        drawn = random.Random(self.seed * 7_919 + absolute).random()
        if features and self.droppable[index] and drawn < self.rate:
            silenced = []
            for tokens in features:
                tokens = tokens.clone()
                tokens[:-1] = 0  # the last token is the decision token
                silenced.append(tokens)
            example = {**example, "image_features": silenced}
        return example


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


class LanguageModeling(Objective):
    """Records encoded by the processor; validation is the closed-question scorer of ``ultra.eval``."""

    name = "language_modeling"

    def plan(self, context: StageContext) -> StagePlan:
        stage, model, processor = context.stage, context.model, context.processor
        options = language_modeling_options(stage.name, stage.objective_options)
        cache = None
        if stage.cache_frozen_image_features:
            _, fusion = find_vision_fusion(model)
            if not any(parameter.requires_grad for parameter in fusion.parameters()):
                cache = FrozenFeatureCache(fusion)
                logger.info("stage %s: vision tower frozen; image tokens computed once per image", stage.name)
        view = None
        if options.grid_dropout:
            view = self._grid_dropout_view(context, cache, options.grid_dropout)

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
            **({"view": view} if view is not None else {}),
        )

    @staticmethod
    def _grid_dropout_view(context: StageContext, cache: FrozenFeatureCache | None, rate: float):
        """The stage's view with grid dropout; it needs a decision token and a frozen, cached tower."""
        _, fusion = find_vision_fusion(context.model)
        name = context.stage.name
        if not getattr(fusion, "decision_classes", None):
            raise ConfigError(
                f"stage {name!r}: grid_dropout keeps only the decision token, but the vision tower has "
                "none (set model.decision_classes)"
            )
        if cache is None:
            raise ConfigError(
                f"stage {name!r}: grid_dropout works on cached image tokens; freeze the vision tower in "
                "this stage and leave cache_frozen_image_features on"
            )
        seed = context.config.seed * 100 + context.index
        decision = set(fusion.decision_classes)
        droppable = [bool(decision & set(record.labels.classes)) for record in context.records]
        logger.info(
            "stage %s: grid dropout %.2f on %d of %d records (those labelled %s)",
            name,
            rate,
            sum(droppable),
            len(droppable),
            sorted(decision),
        )
        return lambda dataset, order, offset: GridDropoutView(dataset, order, offset, droppable, rate, seed)
