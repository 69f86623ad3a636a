"""A unified-schema record's media (``data_zh.schema.Record.media``) as the model's inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from ultra.media.dicom import load_dicom_image
from ultra.media.limits import DEFAULT_LIMITS, MediaLimits
from ultra.media.sources import read_image
from ultra.media.video import read_video

if TYPE_CHECKING:
    from data_zh.schema import Record


@dataclass
class RecordMedia:
    """Images in placeholder order (image files, then DICOM frames) and the video's frames."""

    images: list[Image.Image]
    video_frames: list[Image.Image] | None = None


def read_record_images(
    record: Record, image_root: str | Path | None = None, *, limits: MediaLimits = DEFAULT_LIMITS
) -> list[Image.Image]:
    """The record's images in placeholder order: its image files, then its DICOM frames.

    ``image_root`` overrides the record's stored media root; errors name the resolved path.
    """
    media = record.media
    images = [read_image(media.resolve(relative, image_root), limits=limits) for relative in media.images]
    for ref in media.dicom:
        path = media.resolve(ref.path, image_root)
        images.append(load_dicom_image(path, ref.frame, name=str(path), limits=limits))
    return images


def read_record_media(
    record: Record, image_root: str | Path | None = None, *, limits: MediaLimits = DEFAULT_LIMITS
) -> RecordMedia:
    """Everything the record shows the model: its images and, when it has one, its video's frames
    (the listed ``frame_indices``, else every frame; the processor samples them)."""
    video = record.media.video
    frames = None
    if video is not None:
        frames = read_video(
            record.media.resolve(video.path, image_root), video.frame_indices or None, limits=limits
        )
    return RecordMedia(read_record_images(record, image_root, limits=limits), frames)
