"""data_zh: the unified data schema, converters, committed splits, Chinese text tools and builders."""

from data_zh.builders import (
    ReportBenchmarkConfig,
    build_busi_instructions,
    build_busi_vqa,
    build_dicom_instructions,
    build_laparoscopy_instructions,
    build_report_benchmark,
)
from data_zh.converters import CONVERTERS, ConversionError, convert
from data_zh.io import RecordError, from_llava, read_llava, read_records, to_llava, write_llava, write_records
from data_zh.schema import (
    IMAGE_PLACEHOLDER,
    MODALITIES,
    SCHEMA_VERSION,
    TASKS,
    DicomFrameRef,
    Labels,
    Media,
    OrientedBox,
    Preference,
    Reasoning,
    Record,
    Turn,
    VideoRef,
)
from data_zh.sources import SOURCES, DataSourceSpec, load_records
from data_zh.splits import load_split, split_lookup
from data_zh.stats import plot_stats, record_stats
from data_zh.text import normalize_zh, parse_report, tokenize_zh
from data_zh.validate import validate_records_file

__all__ = [
    "CONVERTERS",
    "IMAGE_PLACEHOLDER",
    "MODALITIES",
    "SCHEMA_VERSION",
    "SOURCES",
    "TASKS",
    "ConversionError",
    "DataSourceSpec",
    "DicomFrameRef",
    "Labels",
    "Media",
    "OrientedBox",
    "Preference",
    "Reasoning",
    "Record",
    "RecordError",
    "ReportBenchmarkConfig",
    "Turn",
    "VideoRef",
    "build_busi_instructions",
    "build_busi_vqa",
    "build_dicom_instructions",
    "build_laparoscopy_instructions",
    "build_report_benchmark",
    "convert",
    "from_llava",
    "load_records",
    "load_split",
    "normalize_zh",
    "parse_report",
    "plot_stats",
    "read_llava",
    "read_records",
    "record_stats",
    "split_lookup",
    "to_llava",
    "tokenize_zh",
    "validate_records_file",
    "write_llava",
    "write_records",
]
