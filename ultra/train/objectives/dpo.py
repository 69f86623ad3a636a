"""``dpo``: direct preference optimisation against a frozen reference (STLLaVA-Med's self-training).

The loss is our own (sigmoid DPO, Rafailov et al. 2023): for a pair with the policy's summed answer
log-likelihoods ``pi_c``, ``pi_r`` and the reference's ``ref_c``, ``ref_r``,
``-logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))``. TRL's trainer runs its own loop (and
defaults to bf16, which fails on CPU), so this objective runs in ``ultra train``'s loop and TRL
is only used to cross-check the formula in a test.

The reference is a frozen copy of the stage-start model kept as a side module, so a resumed run
gets the stage-start reference back from the checkpoint, never from the rebuilt model.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import Dataset
from transformers.modeling_outputs import BaseModelOutputWithPooling

from data_zh.schema import Record
from ultra.config_io import parse_config
from ultra.media import read_record_media
from ultra.model.processor import IGNORE_INDEX
from ultra.train.data import FrozenFeatureCache, LoadFailure, media_keys, messages_of
from ultra.train.loop import StagePlan
from ultra.train.objectives.base import Objective, StageContext
from ultra.train.objectives.language_modeling import collate_examples
from ultra.train.supervision import find_vision_fusion

logger = logging.getLogger(__name__)

REFERENCE_KEY = "dpo_reference"


class DPOOptions(BaseModel):
    """``objective_options`` of a ``dpo`` stage.

    ``beta=0.1``: the DPO paper's and TRL's default; it scales how far the policy may move from the
    reference (the implicit KL penalty)."""

    model_config = ConfigDict(extra="forbid")

    beta: float = Field(default=0.1, gt=0)


def dpo_options(stage_name: str, options: dict[str, Any]) -> DPOOptions:
    """Validated options; a bad one is a config error naming the stage and the field."""
    return parse_config(options, DPOOptions, f"stage {stage_name!r} (dpo) objective_options")


@dataclass(frozen=True)
class DPOTerms:
    """Per-pair loss and implicit rewards (``beta * (pi - ref)``) of a batch."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor

    @property
    def margins(self) -> torch.Tensor:
        return self.chosen_rewards - self.rejected_rewards


def dpo_terms(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> DPOTerms:
    """Sigmoid DPO on summed answer log-likelihoods, one value per pair."""
    chosen_rewards = beta * (policy_chosen - reference_chosen)
    rejected_rewards = beta * (policy_rejected - reference_rejected)
    losses = -nn.functional.logsigmoid(chosen_rewards - rejected_rewards)
    return DPOTerms(losses, chosen_rewards, rejected_rewards)


def answer_log_likelihoods(module: nn.Module, batch: dict) -> torch.Tensor:
    """Summed ``log p(answer token)`` per row (prompt and padding are IGNORE_INDEX in ``labels``);
    cached image tokens (``image_features``) go to the model instead of pixels."""
    inputs = {key: value for key, value in batch.items() if key not in ("labels", "image_features")}
    features = batch.get("image_features")
    if features is not None:
        inputs["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=list(features))}
    logits = module(**inputs).logits[:, :-1].float()
    targets = batch["labels"][:, 1:]
    mask = targets != IGNORE_INDEX
    picked = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(dim=1)


@dataclass
class PreferenceDataset(Dataset):
    """Each preference record as (chosen example, rejected example): the record's question with the
    judge's preferred and rejected answers; a record without a pair or with unreadable media is a
    ``LoadFailure``."""

    records: list[Record]
    processor: Any
    feature_cache: FrozenFeatureCache | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[dict, dict] | LoadFailure:
        record = self.records[index]
        try:
            if record.preference is None:
                raise ValueError("no preference pair (record.preference is empty)")
            media = read_record_media(record, allow_outside_root=True)
            prompt = [message for message in messages_of(record) if message["role"] == "user"][:1]
            examples = []
            for turn in (record.preference.chosen, record.preference.rejected):
                messages = [*prompt, {"role": "assistant", "content": turn.content}]
                example = self.processor.encode_example(messages, media.images, media.video_frames)
                if self.feature_cache is not None and media.images:
                    example["pixel_values"] = None
                    example["image_features"] = self.feature_cache.features(media_keys(record), media.images)
                examples.append(example)
        except Exception as error:  # one unreadable pair is reported and skipped, whatever the cause
            return LoadFailure.of(record.id, error)
        return examples[0], examples[1]


def collate_pairs(processor: Any):
    """Pairs -> one padded batch: the chosen rows first, then the rejected rows in the same order."""

    collate_rows = collate_examples(processor)

    def collate(pairs: list[tuple[dict, dict]]) -> dict:
        return collate_rows([chosen for chosen, _ in pairs] + [rejected for _, rejected in pairs])

    return collate


def pair_terms(module: nn.Module, reference: nn.Module, batch: dict, beta: float) -> DPOTerms:
    """The DPO terms of a collated pair batch (the reference never gets gradients)."""
    half = batch["input_ids"].shape[0] // 2
    policy = answer_log_likelihoods(module, batch)
    with torch.no_grad():
        anchor = answer_log_likelihoods(reference, batch)
    return dpo_terms(policy[:half], policy[half:], anchor[:half], anchor[half:], beta)


def held_out_scores(
    module: nn.Module, reference: nn.Module, dataset: PreferenceDataset, collate, beta: float, batch_size: int
) -> dict[str, float]:
    """Mean loss, reward margin and reward accuracy (share of pairs with chosen reward above the
    rejected one) on held-out pairs."""
    pairs = [item for item in (dataset[i] for i in range(len(dataset))) if not isinstance(item, LoadFailure)]
    if not pairs:
        return {}
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    losses, margins = [], []
    try:
        with torch.no_grad():
            for start in range(0, len(pairs), batch_size):
                batch = collate(pairs[start : start + batch_size])
                batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                terms = pair_terms(module, reference, batch, beta)
                losses.append(terms.losses)
                margins.append(terms.margins)
    finally:
        module.train(was_training)
    margin = torch.cat(margins)
    return {
        "dpo_loss": float(torch.cat(losses).mean()),
        "reward_margin": float(margin.mean()),
        "reward_accuracy": float((margin > 0).float().mean()),
        "pairs": len(pairs),
    }


class DirectPreference(Objective):
    """Sigmoid DPO over ``task: preference`` records; validation reports held-out reward margins."""

    name = "dpo"

    def plan(self, context: StageContext) -> StagePlan:
        stage, model, processor = context.stage, context.model, context.processor
        beta = dpo_options(stage.name, stage.objective_options).beta
        reference = context.side_modules.get_or_create(
            REFERENCE_KEY, lambda: copy.deepcopy(model).requires_grad_(False).eval()
        )
        reference.to(context.device)
        cache = None
        if stage.cache_frozen_image_features:
            _, fusion = find_vision_fusion(model)
            if not any(parameter.requires_grad for parameter in fusion.parameters()):
                cache = FrozenFeatureCache(fusion)
        collate = collate_pairs(processor)

        def loss_fn(module: nn.Module, batch: dict) -> torch.Tensor:
            return pair_terms(module, reference, batch, beta).losses.mean()

        validate = None
        if context.validation_records:
            held_out = PreferenceDataset(context.validation_records, processor, cache)
            batch_size = context.config.validation.batch_size

            def validate(module: nn.Module) -> dict:
                return held_out_scores(module, reference, held_out, collate, beta, batch_size)

        logger.info("stage %s: %d preference records, beta %g", stage.name, len(context.records), beta)
        return StagePlan(
            stage=stage,
            index=context.index,
            module=model,
            dataset=PreferenceDataset(context.records, processor, cache),
            collate=collate,
            loss_fn=loss_fn,
            total_steps=context.steps_for(len(context.records)),
            validate=validate,
            extra={"beta": beta},
        )
