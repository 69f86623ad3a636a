"""Training data: records from every supported input, loaded lazily, failures reported by id.

A record whose media cannot be read is logged with its id and the reason and left out of its
batch — never silently, and never taking the batch down with it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from torch.utils.data import Dataset

from data_zh.schema import IMAGE_PLACEHOLDER, Media, Record, Turn
from ultra.media import read_record_media
from ultra.train.config import DataSource

logger = logging.getLogger(__name__)


class DataSourceError(ValueError):
    """A data source that cannot be turned into records (the message names the path)."""


def _source_options(source: DataSource, takes: tuple[str, ...]) -> dict[str, Any]:
    """The settings of ``source`` that its registry entry takes (BUSI wordings, phantom sizes, ...)."""
    offered: dict[str, Any] = {
        "phrasings": source.phrasings,
        "wordings": source.wordings,
        "image_root": source.image_root,
        **(source.phantom.model_dump() if source.phantom is not None else {}),
    }
    return {name: value for name, value in offered.items() if name in takes and value is not None}


def _registry_records(source: DataSource) -> list[Record]:
    """The records of the registry entry ``source.kind`` names (``data_zh.sources``)."""
    from data_zh.converters import ConversionError
    from data_zh.sources import SOURCES, TRAINING_NAMES, load_records, resolve_source

    ref = resolve_source(source.kind, SOURCES, TRAINING_NAMES)
    options = {**_source_options(source, SOURCES[ref.source].options), **ref.options}
    try:
        return load_records(ref.source, source.path or None, split=source.split, **options)
    except ConversionError as error:
        raise DataSourceError(f"{error} (data source {source.kind})") from None


def load_source(source: DataSource, seed: int = 0) -> list[Record]:
    """Records of one source after its split/language filters, text-only stripping and subsampling."""
    records = _registry_records(source)
    if source.language is not None:
        records = [record for record in records if record.language == source.language]
    if source.classes is not None:
        wanted = set(source.classes)
        records = [record for record in records if wanted & set(record.labels.classes)]
    if source.tasks is not None:
        wanted_tasks = set(source.tasks)
        records = [record for record in records if record.task in wanted_tasks]
    if source.images is not None:
        wanted_images = set(source.images)
        records = [record for record in records if set(record.media.images) <= wanted_images]
    if source.text_only:
        records = [strip_media(record) for record in records]
    if source.image_root is not None:
        records = [
            record.model_copy(update={"media": record.media.model_copy(update={"root": source.image_root})})
            for record in records
        ]
    if not source.allow_outside_root:
        refuse_outside_root(records, source)
    if source.max_records is not None and len(records) > source.max_records:
        records = random.Random(seed).sample(records, source.max_records)
    if not records:
        raise DataSourceError(
            f"{source.path}: no records left after the filters of this {source.kind} source"
        )
    return records * source.repeat


def refuse_outside_root(records: list[Record], source: DataSource) -> None:
    """Training reads a source's media only inside its media root: checked here, once, where records
    enter training (the readers downstream then trust them), unless the source allows it."""
    from data_zh.schema import outside_root_reason

    for record in records:
        media = record.media
        for relative in [*media.images, *(ref.path for ref in media.dicom)] + (
            [media.video.path] if media.video is not None else []
        ):
            reason = outside_root_reason(relative, media.root)
            if reason is not None:
                raise DataSourceError(
                    f"{source.path}: record {record.id}: media path {relative!r} refused: {reason} "
                    "(set allow_outside_root: true on this data source to read it anyway)"
                )


def strip_media(record: Record) -> Record:
    """The same exchange as text only (for QA whose images are not available, e.g. SLAKE here)."""
    turns = [
        Turn(role=turn.role, content=turn.content.replace(IMAGE_PLACEHOLDER, "").strip())
        for turn in record.conversations
    ]
    return record.model_copy(update={"media": Media(), "conversations": turns})


def missing_media(record: Record) -> list[Path]:
    """Media files of a record that do not exist on disk."""
    return [path for path in record.media.all_paths() if not path.exists()]


def drop_records_without_media(records: list[Record]) -> list[Record]:
    """Keep records whose files exist; report each dropped one by id (never silently)."""
    kept = []
    for record in records:
        missing = missing_media(record)
        if missing:
            logger.warning("record %s skipped: missing %s", record.id, ", ".join(str(p) for p in missing[:3]))
        else:
            kept.append(record)
    if len(kept) < len(records):
        logger.warning("%d of %d records skipped for missing media", len(records) - len(kept), len(records))
    return kept


def messages_of(record: Record) -> list[dict[str, str]]:
    """The conversation as plain role/content dicts (the processor's input)."""
    return [{"role": turn.role, "content": turn.content} for turn in record.conversations]


@dataclass(frozen=True)
class LoadFailure:
    """An item (of any objective) that could not be loaded: datasets return it instead of raising,
    so one unreadable record never takes its batch down, and the run reports it by record id."""

    record_id: str
    reason: str

    @classmethod
    def of(cls, record_id: str, error: Exception) -> LoadFailure:
        """The failure of ``record_id`` with the error's type and message as the reason."""
        return cls(record_id, f"{type(error).__name__}: {error}")


class CollatedBatch(NamedTuple):
    """An objective's batch of the loadable items, their count, and the items that failed.

    A named tuple, so ``accelerate`` moves ``inputs`` to the device like any other batch."""

    inputs: Any
    size: int
    failures: list[LoadFailure]


@dataclass
class SkippingCollator:
    """Wraps an objective's ``collate``: it sees only the loadable items; the failed ones travel
    with the batch to the main process (collation may run in DataLoader workers)."""

    collate: Callable[[list], Any]

    def __call__(self, items: list) -> CollatedBatch:
        failures = [item for item in items if isinstance(item, LoadFailure)]
        good = [item for item in items if not isinstance(item, LoadFailure)]
        return CollatedBatch(self.collate(good) if good else None, len(good), failures)


@dataclass
class FailureLog:
    """The run's one collector of failed items: each is logged once by id, then listed in the summary."""

    failures: list[LoadFailure] = field(default_factory=list)

    def report(self, failures: list[LoadFailure]) -> None:
        for failure in failures:
            logger.warning("record %s skipped: %s", failure.record_id, failure.reason)
            self.failures.append(failure)

    def record_ids(self) -> list[str]:
        return sorted({failure.record_id for failure in self.failures})


def media_keys(record: Record) -> list[str]:
    """One stable key per image of a record (path, or path#frame for DICOM), in placeholder order."""
    keys = [str(record.media.resolve(relative)) for relative in record.media.images]
    keys += [f"{record.media.resolve(ref.path)}#{ref.frame}" for ref in record.media.dicom]
    return keys


class FrozenFeatureCache:
    """Fused image tokens of a vision tower that does not train in this stage, computed once per
    image: with frozen encoders, projectors and fusion weights the tokens never change, so the
    stage pays for the encoders once per image instead of once per sample and epoch."""

    def __init__(self, fusion: Any) -> None:
        self.fusion = fusion
        self._features: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._features)

    def features(self, keys: list[str], images: list[Image.Image]) -> list[torch.Tensor]:
        todo = [(key, image) for key, image in zip(keys, images, strict=True) if key not in self._features]
        if todo:
            was_training = self.fusion.training
            self.fusion.eval()
            try:
                with torch.no_grad():
                    tokens = self.fusion(self.fusion.preprocess([image for _, image in todo]))
            finally:
                self.fusion.train(was_training)
            for (key, _), value in zip(todo, tokens, strict=True):
                self._features[key] = value.detach().cpu()
        return [self._features[key] for key in keys]


@dataclass
class RecordDataset(Dataset):
    """Records encoded by the processor on access (images, DICOM frames and video frames, read by
    ``ultra.media``); a failed record yields a ``LoadFailure``.

    With a ``feature_cache`` the examples carry ``image_features`` (fused tokens) instead of
    pixels."""

    records: list[Record]
    processor: Any
    feature_cache: FrozenFeatureCache | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict | LoadFailure:
        record = self.records[index]
        try:
            media = read_record_media(record, allow_outside_root=True)  # vetted in load_source
            example = self.processor.encode_example(messages_of(record), media.images, media.video_frames)
            if self.feature_cache is not None and media.images:
                example["pixel_values"] = None
                example["image_features"] = self.feature_cache.features(media_keys(record), media.images)
        except Exception as error:  # any unreadable record is reported and skipped, whatever the cause
            return LoadFailure(record.id, f"{type(error).__name__}: {error}")
        return example


class OrderedView(Dataset):
    """A dataset read in a fixed order of indices (the stage's seeded order, from an offset)."""

    def __init__(self, dataset: Dataset, order: list[int]) -> None:
        self.dataset = dataset
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, position: int) -> Any:
        return self.dataset[self.order[position]]
