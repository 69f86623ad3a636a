"""A unified-schema record's media (``data_zh.schema.Record.media``) as the model's inputs.

Records come from files anyone can write, so a path that leaves its media root (``../../etc``,
``/etc/passwd``, a root of ``/``) is refused here, in the one place records' media are read, unless
the caller passes ``allow_outside_root=True`` (see ``data_zh.schema.outside_root_reason``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from data_zh.schema import outside_root_reason
from ultra.media.dicom import load_dicom_image
from ultra.media.errors import MediaError
from ultra.media.limits import DEFAULT_LIMITS, MediaLimits
from ultra.media.sources import read_image
from ultra.media.video import read_video

if TYPE_CHECKING:
    from data_zh.schema import Media, Record


@dataclass
class RecordMedia:
    """Images in placeholder order (image files, then DICOM frames) and the video's frames."""

    images: list[Image.Image]
    video_frames: list[Image.Image] | None = None


def media_path(
    media: Media, relative: str, image_root: str | Path | None = None, *, allow_outside_root: bool = False
) -> Path:
    """Where one of the record's files is; MediaError (naming the path) when it leaves the media
    root — ``image_root`` when given, else the record's own root — unless allowed."""
    if not allow_outside_root:
        reason = outside_root_reason(relative, image_root if image_root is not None else media.root)
        if reason is not None:
            raise MediaError(relative, f"refused: {reason} (allow_outside_root / --allow-outside-root)")
    return media.resolve(relative, image_root)


def read_record_images(
    record: Record,
    image_root: str | Path | None = None,
    *,
    limits: MediaLimits = DEFAULT_LIMITS,
    allow_outside_root: bool = False,
) -> list[Image.Image]:
    """The record's images in placeholder order: its image files, then its DICOM frames.

    ``image_root`` overrides the record's stored media root; errors name the resolved path.
    """
    media = record.media
    images = [
        read_image(
            media_path(media, relative, image_root, allow_outside_root=allow_outside_root), limits=limits
        )
        for relative in media.images
    ]
    for ref in media.dicom:
        path = media_path(media, ref.path, image_root, allow_outside_root=allow_outside_root)
        images.append(load_dicom_image(path, ref.frame, name=str(path), limits=limits))
    return images


def read_record_media(
    record: Record,
    image_root: str | Path | None = None,
    *,
    limits: MediaLimits = DEFAULT_LIMITS,
    allow_outside_root: bool = False,
) -> RecordMedia:
    """Everything the record shows the model: its images and, when it has one, its video's frames
    (the listed ``frame_indices``, else every frame; the processor samples them)."""
    video = record.media.video
    frames = None
    if video is not None:
        path = media_path(record.media, video.path, image_root, allow_outside_root=allow_outside_root)
        frames = read_video(path, video.frame_indices or None, limits=limits)
    images = read_record_images(record, image_root, limits=limits, allow_outside_root=allow_outside_root)
    return RecordMedia(images, frames)
