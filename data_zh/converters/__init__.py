"""Converters from every source into Records: ``convert(source_name, root)``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from data_zh.converters.base import ConversionError
from data_zh.converters.busi import convert_busi
from data_zh.converters.detect import detect_sources
from data_zh.converters.dicom import convert_dicom
from data_zh.converters.laparoscopy import convert_laparoscopy
from data_zh.converters.llava import convert_llava
from data_zh.converters.pathvqa import convert_pathvqa
from data_zh.converters.promptcblue import convert_promptcblue
from data_zh.converters.slake import convert_slake
from data_zh.converters.vqa_rad import convert_vqa_rad
from data_zh.schema import Record

CONVERTERS: MappingProxyType[str, Callable[..., list[Record]]] = MappingProxyType(
    {
        "slake": convert_slake,
        "vqa_rad": convert_vqa_rad,
        "pathvqa": convert_pathvqa,
        "busi": convert_busi,
        "laparoscopy": convert_laparoscopy,
        "promptcblue": convert_promptcblue,
        "llava": convert_llava,
        "dicom": convert_dicom,
    }
)


def convert(source_name: str, root: str | Path, **options) -> list[Record]:
    """Records of one source read from its files under ``root`` (options go to its converter)."""
    if source_name not in CONVERTERS:
        raise ValueError(f"unknown source {source_name!r}; known: {', '.join(CONVERTERS)}")
    return CONVERTERS[source_name](root, **options)


__all__ = [
    "CONVERTERS",
    "ConversionError",
    "convert",
    "convert_busi",
    "convert_dicom",
    "convert_laparoscopy",
    "convert_llava",
    "convert_pathvqa",
    "convert_promptcblue",
    "convert_slake",
    "convert_vqa_rad",
    "detect_sources",
]
