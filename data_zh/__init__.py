"""data_zh: the unified data schema, converters, committed splits, Chinese text tools and builders."""

from data_zh.converters import CONVERTERS, ConversionError, convert
from data_zh.io import RecordError, from_llava, read_llava, read_records, to_llava, write_llava, write_records
from data_zh.schema import (
    IMAGE_PLACEHOLDER,
    MODALITIES,
    TASKS,
    DicomFrameRef,
    Labels,
    Media,
    OrientedBox,
    Reasoning,
    Record,
    Turn,
    VideoRef,
)
from data_zh.splits import load_split, split_lookup

__all__ = [
    "CONVERTERS",
    "IMAGE_PLACEHOLDER",
    "MODALITIES",
    "TASKS",
    "ConversionError",
    "DicomFrameRef",
    "Labels",
    "Media",
    "OrientedBox",
    "Reasoning",
    "Record",
    "RecordError",
    "Turn",
    "VideoRef",
    "convert",
    "from_llava",
    "load_split",
    "read_llava",
    "read_records",
    "split_lookup",
    "to_llava",
    "write_llava",
    "write_records",
]
