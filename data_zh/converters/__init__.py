"""Converters from every source's own files into Records: ``convert(name, root)``.

A converter reads one dataset's published layout as it is; ``data_zh.sources`` names what is
built on top of them (instruction sets, evaluation sets) for training and evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from data_zh.converters.base import ConversionError
from data_zh.converters.busbra import BUSBRA_LAYOUT, convert_busbra
from data_zh.converters.busi import convert_busi
from data_zh.converters.detect import (
    looks_like_busi,
    looks_like_dicom,
    looks_like_laparoscopy,
    looks_like_promptcblue,
    looks_like_slake,
    looks_like_vqa_rad,
)
from data_zh.converters.dicom import convert_dicom
from data_zh.converters.laparoscopy import convert_laparoscopy
from data_zh.converters.llava import convert_llava
from data_zh.converters.pathvqa import convert_pathvqa
from data_zh.converters.promptcblue import convert_promptcblue
from data_zh.converters.slake import convert_slake
from data_zh.converters.vqa_rad import convert_vqa_rad
from data_zh.schema import Record
from fusion.registry import Registry


@dataclass(frozen=True)
class Converter:
    """One dataset's reader: ``read(root, **options)``, the layout it expects at ``root`` and the
    options it takes (checked before it runs, so a wrong option names the converters that take it).

    ``looks_like(folder)`` tells from file names whether a folder holds this layout (None: no
    test); a ``fallback`` test is asked only when no other layout matches (DICOM files sit
    beside other sources' files)."""

    read: Callable[..., list[Record]]
    layout: str
    options: tuple[str, ...] = ()
    looks_like: Callable[[Path], bool] | None = None
    fallback: bool = False


SPLIT_MAP = ("split_map",)  # image key -> split, in place of the committed split
LLAVA_DEFAULTS = ("source", "licence", "specialty", "modality", "language", "task")  # fields LLaVA lacks

CONVERTERS: Registry[Converter] = Registry(
    "converter",
    {
        "slake": Converter(
            convert_slake, "SLAKE json files (train.json, validate.json, test.json)", looks_like=looks_like_slake
        ),
        "vqa_rad": Converter(convert_vqa_rad, "VQA-RAD trainset.json / testset.json", looks_like=looks_like_vqa_rad),
        "pathvqa": Converter(
            convert_pathvqa, "PathVQA qas/<split>/<split>_qa.pkl|json or data/*.parquet", ("image_dir",)
        ),
        "busi": Converter(
            convert_busi, "a BUSI-layout folder (labels.csv, images/)", SPLIT_MAP, looks_like=looks_like_busi
        ),
        "busbra": Converter(convert_busbra, BUSBRA_LAYOUT, SPLIT_MAP),
        "laparoscopy": Converter(
            convert_laparoscopy,
            "YOLO frames (classes.txt, <subset>/images, <subset>/labels)",
            SPLIT_MAP,
            looks_like=looks_like_laparoscopy,
        ),
        "promptcblue": Converter(
            convert_promptcblue, "PromptCBLUE train/dev/test .jsonl files", looks_like=looks_like_promptcblue
        ),
        "llava": Converter(
            convert_llava, "a LLaVA .json/.jsonl file or a folder of them", ("image_root", *LLAVA_DEFAULTS)
        ),
        "dicom": Converter(
            convert_dicom, "a folder of .dcm files", SPLIT_MAP, looks_like=looks_like_dicom, fallback=True
        ),
    },
)


def convert(name: str, root: str | Path, **options) -> list[Record]:
    """Records of one dataset read from its files under ``root`` (options go to its converter)."""
    converter = CONVERTERS[name]
    unknown = sorted(set(options) - set(converter.options))
    if unknown:
        takes = ", ".join(converter.options) or "none"
        raise ValueError(f"{name} converter: unknown option(s) {', '.join(unknown)} (it takes: {takes})")
    return converter.read(root, **options)


def detect_sources(root: str | Path) -> list[str]:
    """The converters whose layout ``root`` matches (from file names only); empty when none does."""
    root = Path(root)
    tests = [(name, c.looks_like, c.fallback) for name, c in CONVERTERS.items() if c.looks_like is not None]
    matches = [name for name, looks_like, fallback in tests if not fallback and looks_like(root)]
    return matches or [name for name, looks_like, fallback in tests if fallback and looks_like(root)]


def converters_taking(option: str) -> list[str]:
    """The converters that take ``option`` (for a command's "applies to ... only" message)."""
    return [name for name, converter in CONVERTERS.items() if option in converter.options]


__all__ = [
    "CONVERTERS",
    "ConversionError",
    "Converter",
    "convert",
    "convert_busbra",
    "convert_busi",
    "convert_dicom",
    "convert_laparoscopy",
    "convert_llava",
    "convert_pathvqa",
    "convert_promptcblue",
    "convert_slake",
    "convert_vqa_rad",
    "converters_taking",
    "detect_sources",
]
