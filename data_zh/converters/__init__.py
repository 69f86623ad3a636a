"""Converters from every source into Records: ``convert(source_name, root)``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from data_zh.converters.base import ConversionError
from data_zh.converters.busi import convert_busi
from data_zh.converters.slake import convert_slake
from data_zh.converters.vqa_rad import convert_vqa_rad
from data_zh.schema import Record

CONVERTERS: MappingProxyType[str, Callable[..., list[Record]]] = MappingProxyType(
    {
        "slake": convert_slake,
        "vqa_rad": convert_vqa_rad,
        "busi": convert_busi,
    }
)


def convert(source_name: str, root: str | Path, **options) -> list[Record]:
    """Records of one source read from its files under ``root``."""
    if source_name not in CONVERTERS:
        raise ValueError(f"unknown source {source_name!r}; known: {', '.join(CONVERTERS)}")
    return CONVERTERS[source_name](root, **options)


__all__ = ["CONVERTERS", "ConversionError", "convert", "convert_busi", "convert_slake", "convert_vqa_rad"]
