"""Stage 0 for presets without pretrained parts: train the vision encoders on image labels.

A few hundred labelled images are enough for a small CNN to learn what a lesion looks like, but
not enough for next-token loss alone to shape an encoder. So the encoders first learn the labels
through a temporary linear head on the mean of the fused image tokens; the head is then dropped.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import torch
from PIL import Image, ImageEnhance
from torch import nn
from torch.utils.data import Dataset

from data_zh.schema import Record
from ultra.media import read_record_images
from ultra.train.config import Augmentation
from ultra.train.data import LoadFailure

logger = logging.getLogger(__name__)


def find_vision_fusion(model: nn.Module) -> tuple[str, nn.Module]:
    """``model.vision_tower`` and its parameter-name prefix (stage patterns match parameter names)."""
    tower = getattr(model, "vision_tower", None)
    for name, module in model.named_modules():
        if tower is not None and module is tower:
            return name, tower
    raise ValueError(f"{type(model).__name__} has no vision_tower to train on labels")


@dataclass(frozen=True)
class LabelledImage:
    """One image (record) and its class index."""

    record: Record
    label: int


def labelled_images(
    records: list[Record], classes: list[str] | None = None
) -> tuple[list[LabelledImage], list[str]]:
    """One item per distinct single-image record with exactly one class label (instruction tasks
    repeat the same image, so duplicates are dropped by image path)."""
    seen: set[str] = set()
    chosen: list[tuple[Record, str]] = []
    for record in records:
        if record.media.count != 1 or len(record.labels.classes) != 1:
            continue
        key = str(record.media.all_paths()[0])
        if key in seen:
            continue
        seen.add(key)
        chosen.append((record, record.labels.classes[0]))
    if not chosen:
        raise ValueError("no single-image records with one class label to train the encoders on")
    classes = classes or sorted({label for _, label in chosen})
    unknown = sorted({label for _, label in chosen} - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the training classes {classes}")
    return [LabelledImage(record, classes.index(label)) for record, label in chosen], classes


def augment(image: Image.Image, settings: Augmentation, rng: random.Random) -> Image.Image:
    """Flip, random resized crop, brightness and contrast jitter (speckle texture is left alone)."""
    if settings.hflip and rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    low, high = settings.crop_scale
    scale = rng.uniform(low, high)
    width, height = image.size
    crop_w, crop_h = max(1, int(width * scale**0.5)), max(1, int(height * scale**0.5))
    left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
    image = image.crop((left, top, left + crop_w, top + crop_h)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    if settings.brightness:
        image = ImageEnhance.Brightness(image).enhance(
            1 + rng.uniform(-settings.brightness, settings.brightness)
        )
    if settings.contrast:
        image = ImageEnhance.Contrast(image).enhance(1 + rng.uniform(-settings.contrast, settings.contrast))
    return image


class LabelledImageDataset(Dataset):
    """Images with labels; augmentation is seeded by the sample's position in the stage order, so a
    resumed run draws the same crops as an uninterrupted one."""

    def __init__(self, items: list[LabelledImage], augmentation: Augmentation | None, seed: int) -> None:
        self.items = items
        self.augmentation = augmentation
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int, position: int) -> tuple[Image.Image, int, str]:
        item = self.items[index]
        image = read_record_images(item.record, allow_outside_root=True)[0]
        if self.augmentation is not None:
            image = augment(image, self.augmentation, random.Random(self.seed * 7_919 + position))
        return image, item.label, item.record.id

    def __getitem__(self, index: int) -> tuple[Image.Image, int, str]:
        return self.load(index, index)


class PositionalView(Dataset):
    """The stage order over a labelled dataset, passing each sample's position for its augmentation."""

    def __init__(
        self, dataset: LabelledImageDataset | EncodedImageDataset, order: list[int], offset: int = 0
    ) -> None:
        self.dataset = dataset
        self.order = order
        self.offset = offset

    def __len__(self) -> int:
        return len(self.order) - self.offset

    def __getitem__(self, position: int) -> tuple | LoadFailure:
        absolute = position + self.offset
        try:
            return self.dataset.load(self.order[absolute], absolute)
        except Exception as error:  # reported by the run's failure log and skipped
            return LoadFailure.of(self.dataset.items[self.order[absolute]].record.id, error)


def fuse_encoded(fusion: nn.Module, features: list[torch.Tensor]) -> torch.Tensor:
    """The fused grid (``VisionFusion.forward(..., decision=False)``) from tokens that
    ``fusion.encode_each`` already produced, so frozen encoders can be run once per image (a test
    checks it against the real forward)."""
    return fusion.fuse_features(features)


class ImageClassifier(nn.Module):
    """Mean of the fused grid tokens -> linear head: a temporary one, or the tower's own decision
    head when the stage learns the classes of its decision token."""

    def __init__(self, fusion: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.fusion = fusion
        self.head = head

    def forward(
        self, pixel_values: list[torch.Tensor] | None = None, encoded: list[torch.Tensor] | None = None
    ):
        if encoded is None:
            tokens = self.fusion(pixel_values, decision=False)
        else:
            tokens = fuse_encoded(self.fusion, encoded)
        return self.head(tokens.mean(dim=1))


class EncodedImageDataset(Dataset):
    """Labelled images passed through frozen encoders (``fusion.encode_each``) once, on first use:
    a stage that trains only projectors/fusion weights then costs almost nothing per epoch."""

    def __init__(self, items: list[LabelledImage], fusion: nn.Module) -> None:
        self.items = items
        self.fusion = fusion
        self.features: dict[int, list[torch.Tensor]] = {}

    def encoded(self, index: int) -> list[torch.Tensor]:
        if index not in self.features:
            was_training = self.fusion.training
            self.fusion.eval()
            try:
                with torch.no_grad():
                    image = read_record_images(self.items[index].record, allow_outside_root=True)[0]
                    encoded = self.fusion.encode_each(self.fusion.preprocess([image]))
            finally:
                self.fusion.train(was_training)
            self.features[index] = [tokens[0] for tokens in encoded]
        return self.features[index]

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int, position: int) -> tuple[list[torch.Tensor], int, str]:
        return self.encoded(index), self.items[index].label, self.items[index].record.id


def class_weights(items: list[LabelledImage], num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights so the loss optimises balanced accuracy, not the majority class."""
    counts = torch.bincount(torch.tensor([item.label for item in items]), minlength=num_classes).float()
    weights = counts.sum() / (num_classes * counts.clamp(min=1))
    return weights
