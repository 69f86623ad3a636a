"""Turning requests into model inputs: the chat, the image tensors, blank images, image weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ultra.answerer.requests import Request
from ultra.model.processor import IGNORE_INDEX, UltraProcessor, chat_messages


def base_model(model: nn.Module) -> nn.Module:
    """The ``UltraForConditionalGeneration`` under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def conversation(request: Request, answer: str | None = None) -> list[dict[str, str]]:
    """The request's chat (``ultra.model.processor.chat_messages``), with ``answer`` when scored."""
    history = [(turn.role, turn.text, len(turn.images)) for turn in request.history]
    return chat_messages(
        request.question, len(request.images), request.video_frames is not None, history, answer
    )


def image_scales(request: Request) -> list[float] | None:
    """Per-image token scales (history images 1.0, this turn's ``w_i * N``), or None when unweighted."""
    if request.image_weights is None:
        return None
    total = float(sum(request.image_weights))
    count = len(request.images)
    earlier = len(request.all_images) - count
    return [1.0] * earlier + [weight / total * count for weight in request.image_weights]


@dataclass
class EncodedRequest:
    """One request's tensors (1-D ids; per-encoder pixel tensors) before batching."""

    input_ids: torch.Tensor
    labels: torch.Tensor | None
    pixel_values: list[torch.Tensor] | None
    pixel_values_videos: list[torch.Tensor] | None
    scales: list[float] | None

    @property
    def num_images(self) -> int:
        return 0 if self.pixel_values is None else int(self.pixel_values[0].shape[0])

    def as_example(self) -> dict[str, Any]:
        return {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "pixel_values": self.pixel_values,
            "pixel_values_videos": self.pixel_values_videos,
        }


def _answer_tokens(
    processor: UltraProcessor, request: Request, prompt_ids: list[int], answer: str
) -> tuple[list[int], list[int]]:
    """The whole exchange with ``answer`` and labels on the answer's own tokens only."""
    input_ids, labels = processor.tokenize_conversation(conversation(request, answer), False)
    # only this answer's own tokens: not earlier assistant turns, not the closing <|im_end|>
    labels = [IGNORE_INDEX] * len(prompt_ids) + [
        IGNORE_INDEX if label == processor.eos_token_id else label for label in labels[len(prompt_ids) :]
    ]
    return input_ids, labels


def _media(
    model: nn.Module, processor: UltraProcessor, request: Request
) -> tuple[list[torch.Tensor] | None, list[torch.Tensor] | None]:
    """The request's image and video pixel tensors (blank ones for the blind check)."""
    images = request.all_images
    tower = model.vision_tower
    pixel_values = None
    if images:
        pixel_values = (
            [p.cpu() for p in tower.blank_pixel_values(len(images))]
            if request.blank_images
            else processor.preprocess_images(images)
        )
    videos = None
    if request.video_frames is not None:
        videos = (
            [p.cpu() for p in tower.blank_pixel_values(processor.video_num_frames)]
            if request.blank_images
            else processor.preprocess_images(processor.sample_frames(request.video_frames))
        )
    return pixel_values, videos


def encode_request(
    model: nn.Module, processor: UltraProcessor, request: Request, answer: str | None = None
) -> EncodedRequest:
    """The prompt of ``request`` (ending with the assistant header), or with ``answer`` the whole
    exchange with labels on the answer's tokens only (for likelihoods)."""
    if answer is not None:
        return encode_answers(model, processor, request, [answer])[0]
    prompt_ids, _ = processor.tokenize_conversation(conversation(request), add_generation_prompt=True)
    pixel_values, videos = _media(model, processor, request)
    return EncodedRequest(
        input_ids=torch.tensor(prompt_ids, dtype=torch.long),
        labels=None,
        pixel_values=pixel_values,
        pixel_values_videos=videos,
        scales=image_scales(request),
    )


def encode_answers(
    model: nn.Module, processor: UltraProcessor, request: Request, answers: Sequence[str]
) -> list[EncodedRequest]:
    """One scored exchange per answer to the same request: the prompt and its images are
    tokenised and preprocessed once and shared by every row (closed-answer probabilities)."""
    prompt_ids, _ = processor.tokenize_conversation(conversation(request), add_generation_prompt=True)
    pixel_values, videos = _media(model, processor, request)
    scales = image_scales(request)
    encoded = []
    for answer in answers:
        input_ids, labels = _answer_tokens(processor, request, prompt_ids, answer)
        encoded.append(
            EncodedRequest(
                input_ids=torch.tensor(input_ids, dtype=torch.long),
                labels=torch.tensor(labels, dtype=torch.long),
                pixel_values=pixel_values,
                pixel_values_videos=videos,
                scales=scales,
            )
        )
    return encoded


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    moved = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            moved[key] = value.to(device)
        elif isinstance(value, list):
            moved[key] = [item.to(device) for item in value]
        else:
            moved[key] = value
    return moved


def collate_requests(
    model: nn.Module, processor: UltraProcessor, encoded: Sequence[EncodedRequest], padding_side: str
) -> dict[str, Any]:
    """A batch on the model's device. Weighted images are encoded here and passed as scaled
    features (``mm_encoder_outputs``), the seam the model already has for pre-encoded images."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    batch = processor.collate([item.as_example() for item in encoded], padding_side=padding_side)
    if padding_side == "left":
        batch.pop("labels")
    device = next(model.parameters()).device
    batch = _to_device(batch, device)
    if any(item.scales is not None for item in encoded) and "pixel_values" in batch:
        scales = [
            scale
            for item in encoded
            for scale in (item.scales if item.scales is not None else [1.0] * item.num_images)
        ]
        features = base_model(model).get_image_features(batch.pop("pixel_values")).pooler_output
        scaled = [tokens * scale for tokens, scale in zip(features, scales, strict=True)]
        batch["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=scaled)}
    return batch
