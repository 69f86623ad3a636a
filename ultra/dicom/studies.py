"""Studies: instances grouped by StudyInstanceUID into a multi-image report, the seam where image
screening plugs in, and the study lines of ``results.jsonl``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image


@dataclass(frozen=True)
class StudyImage:
    """One written PNG of a study (path relative to OUTDIR)."""

    path: str
    sop_instance: str
    frame: int


@dataclass(frozen=True)
class Study:
    uid: str
    images: list[StudyImage]
    instances: int


# A selector receives a study and its images' pixels (as written, read through ``ultra.media``, in
# ``study.images`` order) and returns the kept images with their weights. The distilled screener is
# one (``ultra.screen.seams.study_selector``); the default keeps every image.
ImageSelector = Callable[[Study, Sequence[Image.Image]], list[tuple[StudyImage, float]]]


def keep_all(study: Study, pictures: Sequence[Image.Image] = ()) -> list[tuple[StudyImage, float]]:
    """Keep every image with a uniform weight (the pixels are not needed)."""
    if not study.images:
        return []
    weight = 1.0 / len(study.images)
    return [(image, weight) for image in study.images]


def _order(record: dict[str, Any]) -> tuple:
    return (
        record.get("series_number") if record.get("series_number") is not None else 1 << 30,
        record.get("series", ""),
        record.get("instance_number") if record.get("instance_number") is not None else 1 << 30,
        record.get("sop_instance", ""),
    )


def group_studies(records: list[dict[str, Any]]) -> list[Study]:
    """Instances grouped by study, in series/instance order, studies sorted by UID."""
    by_study: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_study[record["study"]].append(record)
    studies = []
    for uid in sorted(by_study):
        members = sorted(by_study[uid], key=_order)
        images = [
            StudyImage(path, member["sop_instance"], frame)
            for member in members
            for path, frame in zip(member["images"], member["frame_indices"], strict=True)
        ]
        studies.append(Study(uid, images, len(members)))
    return studies
