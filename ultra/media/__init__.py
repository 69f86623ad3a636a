"""The one media reader: images, DICOM frames, videos and a record's media, as RGB PIL images.

Below ``ultra.dicom``, ``ultra.serve``, ``ultra.eval`` and the commands (they import from here, never the
other way round).
Every failure is one ``MediaError`` naming the source by a caller-chosen id; sizes are checked
against ``MediaLimits`` from headers before anything is decoded. A server passes ``max_side`` (what
its model needs) and a ``DecodeAccount`` per request, drawn from one ``DecodeBudget``, so images
are decoded one at a time, shrunk at once, and what all requests decode at once stays bounded.
"""

from ultra.media.dicom import (
    decode_frame_rgb,
    dicom_modality,
    frame_count,
    frame_to_rgb,
    is_dicom_file,
    load_dicom_image,
    read_dataset,
)
from ultra.media.errors import DicomReadError, MediaError
from ultra.media.limits import DEFAULT_LIMITS, DecodeAccount, DecodeBudget, DecodeBudgetError, MediaLimits
from ultra.media.records import RecordMedia, read_record_images, read_record_media
from ultra.media.sources import ImageSource, data_url_bytes, read_image
from ultra.media.video import VideoSource, read_video

__all__ = [
    "DEFAULT_LIMITS",
    "DecodeAccount",
    "DecodeBudget",
    "DecodeBudgetError",
    "DicomReadError",
    "ImageSource",
    "MediaError",
    "MediaLimits",
    "RecordMedia",
    "VideoSource",
    "data_url_bytes",
    "decode_frame_rgb",
    "dicom_modality",
    "frame_count",
    "frame_to_rgb",
    "is_dicom_file",
    "load_dicom_image",
    "read_dataset",
    "read_image",
    "read_record_images",
    "read_record_media",
    "read_video",
]
