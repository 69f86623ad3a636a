"""``UltraProcessor``: chat prompts, placeholder expansion, image preprocessing, padding, labels.

One object turns conversations plus images (or video frames) into model inputs, for generation
(left padding, prompt ends with the assistant header) and for training (right padding, labels
with every prompt and image position set to -100 so only the answers are learned).

The chat is built in one place: :func:`chat_messages` writes the turns (a placeholder per image),
and ``UltraProcessor.tokenize_conversation`` puts the system prompt first when the turns lack one
and lays them out with the tokenizer's own chat template, so any causal LM with a template gets
its own layout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import PreTrainedTokenizerBase

from ultra.model.configuration import UltraConfig
from ultra.model.tokenizer import IMAGE_TOKEN, VIDEO_TOKEN

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
ImageTransform = Callable[[list[Image.Image]], torch.Tensor]
CHAT_ROLES = ("system", "user", "assistant")
# Private-use code points stand in for each message's content when the template is rendered, so
# the text the template puts around the contents is found without assuming any layout.
CONTENT_MARK = "\ue000{}\ue001"


def user_message(question: str, num_images: int = 0, video: bool = False) -> dict[str, str]:
    """A user turn with one ``<image>`` placeholder per image (and ``<video>``) before the question."""
    prefix = VIDEO_TOKEN + "\n" if video else ""
    prefix += (IMAGE_TOKEN + "\n") * num_images
    return {"role": "user", "content": prefix + question}


def chat_messages(
    question: str,
    num_images: int = 0,
    video: bool = False,
    history: Sequence[tuple[str, str, int]] = (),
    answer: str | None = None,
) -> list[dict[str, str]]:
    """The chat of one request: earlier turns as ``(role, text, image count)``, then the question
    with its images (and video), then ``answer`` when it is to be scored. Texts written by a
    caller may not hold the placeholders, which only this function places."""
    texts = [text for _, text, _ in history] + [question] + ([answer] if answer is not None else [])
    for text in texts:
        for token in (IMAGE_TOKEN, VIDEO_TOKEN):
            if token in text:
                raise ValueError(f"the text contains the reserved placeholder {token}: {text[:60]!r}")
    messages = [
        user_message(text, images) if role == "user" else {"role": role, "content": text}
        for role, text, images in history
    ]
    messages.append(user_message(question, num_images, video))
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


class UltraProcessor:
    """Tokenizer + per-encoder image transforms + the chat layout of one model.

    ``image_transforms`` are the fusion encoders' own transforms (``encoder.transform``), so the
    processor always normalises exactly as the encoders expect.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        image_transforms: Sequence[ImageTransform],
        config: UltraConfig,
    ) -> None:
        self.tokenizer = tokenizer
        self.image_transforms = list(image_transforms)
        self.image_token_id = config.image_token_id
        self.video_token_id = config.video_token_id
        self.tokens_per_image = config.tokens_per_image
        self.video_tokens = config.video_tokens
        self.video_num_frames = config.video_num_frames
        self.video_sampling = config.video_sampling
        self.system_prompt = config.system_prompt
        self.crop_scan_region = bool(getattr(config, "crop_scan_region", False))
        for token, expected in ((IMAGE_TOKEN, self.image_token_id), (VIDEO_TOKEN, self.video_token_id)):
            actual = tokenizer.convert_tokens_to_ids(token)
            if actual != expected:
                raise ValueError(
                    f"tokenizer maps {token} to id {actual} but the model config expects {expected}"
                )
        self.pad_token_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"the tokenizer {tokenizer.name_or_path!r} has no chat template; the processor lays "
                "out every chat with it (save one with the tokenizer: chat_template.jinja)"
            )
        self.eos_token_id = self._end_of_turn_id()

    # ---- text -------------------------------------------------------------------------------
    def _text_ids(self, text: str) -> list[int]:
        """Token ids of plain text, with placeholders expanded to their feature-token blocks."""
        ids: list[int] = []
        for video_index, video_part in enumerate(text.split(VIDEO_TOKEN)):
            if video_index:
                ids.extend([self.video_token_id] * self.video_tokens)
            for image_index, part in enumerate(video_part.split(IMAGE_TOKEN)):
                if image_index:
                    ids.extend([self.image_token_id] * self.tokens_per_image)
                if part:
                    ids.extend(self.tokenizer.encode(part, add_special_tokens=False))
        return ids

    def _with_system(self, messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
        messages = list(messages)
        if not messages or messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages

    def _layout(self, roles: Sequence[str], add_generation_prompt: bool) -> list[str]:
        """The template's text before each message's content and after the last: ``len(roles) + 1``
        pieces, so every content is tokenised on its own (placeholders expanded) between them."""
        marks = [CONTENT_MARK.format(index) for index in range(len(roles))]
        text = self.tokenizer.apply_chat_template(
            [{"role": role, "content": mark} for role, mark in zip(roles, marks, strict=True)],
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )
        pieces = []
        for mark in marks:
            before, found, text = text.partition(mark)
            if not found or mark in text:
                raise ValueError(
                    f"the chat template of {self.tokenizer.name_or_path!r} does not write each message's "
                    f"content exactly once (roles {list(roles)})"
                )
            pieces.append(before)
        return [*pieces, text]

    def _end_of_turn_id(self) -> int:
        """The special token the template closes an assistant turn with (``<|im_end|>`` in ChatML):
        what generation stops at and what training teaches the model to say last."""
        after_answer = self._layout(["system", "user", "assistant"], add_generation_prompt=False)[-1]
        special = set(self.tokenizer.all_special_ids)
        for token in self.tokenizer.encode(after_answer, add_special_tokens=False):
            if token in special:
                return token
        raise ValueError(
            f"the chat template of {self.tokenizer.name_or_path!r} closes an assistant turn with "
            f"{after_answer!r}, which holds no special token to stop at"
        )

    def _layout_labels(self, ids: list[int], after_answer: bool) -> list[int]:
        """Labels of template text: after an answer, its end-of-turn token is learned (the rest of
        the layout, such as the newline and the next header, is not something to predict)."""
        if not after_answer:
            return [IGNORE_INDEX] * len(ids)
        end = ids.index(self.eos_token_id) + 1
        return ids[:end] + [IGNORE_INDEX] * (len(ids) - end)

    def tokenize_conversation(
        self, messages: Sequence[dict[str, str]], add_generation_prompt: bool
    ) -> tuple[list[int], list[int]]:
        """(input ids, labels): labels copy only the assistant bodies and the token that ends
        each of them; everything else is -100. The layout is the tokenizer's chat template."""
        messages = self._with_system(messages)
        roles = [message["role"] for message in messages]
        for role in roles:
            if role not in CHAT_ROLES:
                raise ValueError(f"unknown chat role {role!r} (expected system, user or assistant)")
        pieces = self._layout(roles, add_generation_prompt)
        input_ids: list[int] = []
        labels: list[int] = []
        for index, piece in enumerate(pieces):
            layout = self.tokenizer.encode(piece, add_special_tokens=False)
            input_ids += layout
            labels += self._layout_labels(layout, index > 0 and roles[index - 1] == "assistant")
            if index < len(messages):
                body = self._text_ids(messages[index]["content"])
                input_ids += body
                labels += body if roles[index] == "assistant" else [IGNORE_INDEX] * len(body)
        return input_ids, labels

    # ---- images -----------------------------------------------------------------------------
    def prepare_image(self, image: Image.Image) -> Image.Image:
        """What the encoders see before resizing: RGB, cut to the scan region when configured."""
        if not self.crop_scan_region:
            from fusion.pixels import to_rgb

            return to_rgb(image)  # the one pixel policy: 16-bit images scaled, not clipped
        from fusion.ultrasound import prepare_ultrasound

        return prepare_ultrasound(image, crop=True)[0]

    def preprocess_images(self, images: Sequence[Image.Image]) -> list[torch.Tensor]:
        """One ``[N, 3, H_i, W_i]`` tensor per encoder."""
        prepared = [self.prepare_image(image) for image in images]
        return [transform(prepared) for transform in self.image_transforms]

    def sample_frames(self, frames: Sequence[Image.Image]) -> list[Image.Image]:
        """Exactly ``video_num_frames`` frames (``fusion.video`` sampling; short clips repeat frames)."""
        from fusion.video import sample_frames

        return sample_frames(list(frames), self.video_num_frames, self.video_sampling)

    @staticmethod
    def _count(messages: Sequence[dict[str, str]], token: str) -> int:
        return sum(message["content"].count(token) for message in messages)

    def _check_counts(
        self, messages: Sequence[dict[str, str]], images: Sequence[Image.Image], videos: int
    ) -> None:
        placeholders = self._count(messages, IMAGE_TOKEN)
        if placeholders != len(images):
            raise ValueError(
                f"the conversation has {placeholders} {IMAGE_TOKEN} placeholders but {len(images)} images were given"
            )
        video_placeholders = self._count(messages, VIDEO_TOKEN)
        if video_placeholders != videos:
            raise ValueError(
                f"the conversation has {video_placeholders} {VIDEO_TOKEN} placeholders but {videos} videos were given"
            )

    # ---- training ---------------------------------------------------------------------------
    def encode_example(
        self,
        messages: Sequence[dict[str, str]],
        images: Sequence[Image.Image] = (),
        video_frames: Sequence[Image.Image] | None = None,
    ) -> dict[str, Any]:
        """One training example: ``input_ids``/``labels`` (1-D) and per-encoder pixel tensors."""
        self._check_counts(messages, images, int(video_frames is not None))
        input_ids, labels = self.tokenize_conversation(messages, add_generation_prompt=False)
        example: dict[str, Any] = {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "pixel_values": self.preprocess_images(images) if images else None,
            "pixel_values_videos": (
                self.preprocess_images(self.sample_frames(video_frames)) if video_frames is not None else None
            ),
        }
        return example

    def _stack_pixels(self, examples: Sequence[dict[str, Any]], key: str) -> list[torch.Tensor] | None:
        parts = [example[key] for example in examples if example.get(key) is not None]
        if not parts:
            return None
        return [torch.cat([part[index] for part in parts], dim=0) for index in range(len(parts[0]))]

    def collate(self, examples: Sequence[dict[str, Any]], padding_side: str = "right") -> dict[str, Any]:
        """Pad ``encode_example`` outputs into a batch (a DataLoader ``collate_fn``)."""
        if not examples:
            raise ValueError("collate needs at least one example")
        length = max(int(example["input_ids"].shape[0]) for example in examples)
        batch_ids = torch.full((len(examples), length), self.pad_token_id, dtype=torch.long)
        batch_labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(examples), length), dtype=torch.long)
        for row, example in enumerate(examples):
            size = int(example["input_ids"].shape[0])
            span = slice(length - size, length) if padding_side == "left" else slice(0, size)
            batch_ids[row, span] = example["input_ids"]
            attention[row, span] = 1
            if example.get("labels") is not None:
                batch_labels[row, span] = example["labels"]
        batch: dict[str, Any] = {"input_ids": batch_ids, "attention_mask": attention, "labels": batch_labels}
        for key in ("pixel_values", "pixel_values_videos"):
            stacked = self._stack_pixels(examples, key)
            if stacked is not None:
                batch[key] = stacked
        return batch

    # ---- generation -------------------------------------------------------------------------
    def encode_prompt(
        self,
        question: str,
        images: Sequence[Image.Image] = (),
        video_frames: Sequence[Image.Image] | None = None,
        pixel_values: list[torch.Tensor] | None = None,
    ) -> dict[str, Any]:
        """A generation prompt for one question; ``pixel_values`` overrides the image tensors
        (e.g. blank images) while keeping the placeholders of ``len(images)`` images."""
        messages = chat_messages(question, len(images), video_frames is not None)
        input_ids, _ = self.tokenize_conversation(messages, add_generation_prompt=True)
        if pixel_values is None and images:
            pixel_values = self.preprocess_images(images)
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": None,
            "pixel_values": pixel_values,
            "pixel_values_videos": (
                self.preprocess_images(self.sample_frames(video_frames)) if video_frames is not None else None
            ),
        }

    def __call__(
        self,
        questions: Sequence[str],
        images: Sequence[Sequence[Image.Image]] | None = None,
        video_frames: Sequence[Sequence[Image.Image] | None] | None = None,
    ) -> dict[str, Any]:
        """A left-padded generation batch for several questions."""
        images = images if images is not None else [()] * len(questions)
        video_frames = video_frames if video_frames is not None else [None] * len(questions)
        if not len(questions) == len(images) == len(video_frames):
            raise ValueError(
                f"{len(questions)} questions but {len(images)} image lists and {len(video_frames)} videos"
            )
        examples = [
            self.encode_prompt(q, imgs, frames)
            for q, imgs, frames in zip(questions, images, video_frames, strict=True)
        ]
        batch = self.collate(examples, padding_side="left")
        batch.pop("labels")
        return batch

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def batch_decode(self, ids: torch.Tensor) -> list[str]:
        return [self.decode(row) for row in ids]

    def save_pretrained(self, directory: str | Path) -> None:
        """The tokenizer files; everything else the processor needs is in the model config."""
        self.tokenizer.save_pretrained(directory)
