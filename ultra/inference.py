"""Answering questions: batched, left-padded generation, streaming, and the blank-image baseline.

Every answer surface (CLI, demo, API) shows :data:`ultra.RESEARCH_NOTICE` next to what these
functions return.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ultra.model.processor import UltraProcessor

logger = logging.getLogger(__name__)

# timm's IMAGENET_DEFAULT_MEAN: the normalisation mean of the tiny-zh encoders.
IMAGENET_MEAN = (0.485, 0.456, 0.406)


class UntrainedModelError(RuntimeError):
    """A model whose image projectors were never trained (its answers would ignore the image)."""


def check_projectors_trained(model: torch.nn.Module, allow_untrained: bool = False) -> None:
    """Refuse a model whose image pathway is still random, unless the caller accepts that."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if allow_untrained or bool(getattr(base.config, "projectors_trained", False)):
        return
    raise UntrainedModelError(
        "this model's image projectors were never trained, so its answers cannot depend on the image. "
        "Train them first (`ultra train` with a projector/fusion stage, see configs/), or pass "
        "--allow-untrained to run it anyway (for tests of random-init checkpoints)."
    )


@dataclass
class VQARequest:
    """One question about zero or more images, or about a video clip (its frames)."""

    images: list[Image.Image]
    question: str
    video_frames: list[Image.Image] | None = field(default=None)


def blank_like(image: Image.Image, fusion: torch.nn.Module | None = None) -> Image.Image:
    """The "blank" version of an image: same size, filled with the encoder's mean colour.

    After the encoder's normalisation this is (up to 8-bit rounding) all zeros, the same blank as
    ``fusion.VisionFusion.blank_pixel_values``; blind-image baselines, the screening teacher and
    the evaluation all use this one definition. With several encoders of different means, the
    first encoder's mean is used here, while ``generate_answers(blank_images=True)`` feeds each
    encoder its exact zeros.
    """
    mean = IMAGENET_MEAN if fusion is None else fusion.encoders[0].transform.mean
    colour = np.round(np.asarray(mean) * 255.0).clip(0, 255).astype(np.uint8)
    return Image.fromarray(np.broadcast_to(colour, (image.height, image.width, 3)).copy(), mode="RGB")


def _vision_tower(model: torch.nn.Module) -> torch.nn.Module:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model.vision_tower


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _to_device(batch: dict, device: torch.device) -> dict:
    moved = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            moved[key] = value.to(device)
        elif isinstance(value, list):
            moved[key] = [item.to(device) for item in value]
        else:
            moved[key] = value
    return moved


def prepare_batch(
    model: torch.nn.Module,
    processor: UltraProcessor,
    requests: Sequence[VQARequest],
    blank_images: bool = False,
) -> dict:
    """A left-padded generation batch on the model's device; blank images keep the placeholders."""
    examples = []
    for request in requests:
        pixel_values = None
        if blank_images and request.images:
            pixel_values = [p.cpu() for p in _vision_tower(model).blank_pixel_values(len(request.images))]
        examples.append(
            processor.encode_prompt(request.question, request.images, request.video_frames, pixel_values)
        )
    batch = processor.collate(examples, padding_side="left")
    batch.pop("labels")
    return _to_device(batch, _model_device(model))


def _generation_kwargs(processor: UltraProcessor, max_new_tokens: int, do_sample: bool, **extra) -> dict:
    kwargs = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "eos_token_id": processor.eos_token_id,
        "pad_token_id": processor.pad_token_id,
    }
    if not do_sample:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    kwargs.update(extra)
    return kwargs


@torch.inference_mode()
def generate_answers(
    model: torch.nn.Module,
    processor: UltraProcessor,
    requests: Sequence[VQARequest],
    batch_size: int = 8,
    max_new_tokens: int = 32,
    blank_images: bool = False,
    do_sample: bool = False,
    show_progress: bool = False,
    **generate_kwargs,
) -> list[str]:
    """Answer every request (greedy by default), ``batch_size`` at a time with left padding."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    answers: list[str] = []
    kwargs = _generation_kwargs(processor, max_new_tokens, do_sample, **generate_kwargs)
    columns = (TextColumn("answering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not show_progress) as progress:
        task = progress.add_task("answering", total=len(requests))
        for start in range(0, len(requests), batch_size):
            chunk = requests[start : start + batch_size]
            batch = prepare_batch(model, processor, chunk, blank_images)
            output = model.generate(**batch, **kwargs)
            answers.extend(processor.batch_decode(output[:, batch["input_ids"].shape[1] :]))
            progress.advance(task, len(chunk))
    return answers


def stream_answer(
    model: torch.nn.Module,
    processor: UltraProcessor,
    request: VQARequest,
    max_new_tokens: int = 64,
    do_sample: bool = False,
    **generate_kwargs,
) -> Iterator[str]:
    """Yield the answer piece by piece as it is generated (``TextIteratorStreamer``)."""
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    batch = prepare_batch(model, processor, [request])
    kwargs = _generation_kwargs(processor, max_new_tokens, do_sample, streamer=streamer, **generate_kwargs)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with torch.inference_mode():
                model.generate(**batch, **kwargs)
        except BaseException as error:  # re-raised in the caller's thread below
            errors.append(error)
            streamer.end()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    yield from streamer
    worker.join()
    if errors:
        raise errors[0]
