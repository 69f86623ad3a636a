"""Does a folder hold a converter's files? Judged from file names only (nothing is read).

Lets ``ultra data stats FOLDER`` convert a source folder on the fly; each converter's entry in
``CONVERTERS`` names its test, and ``detect_sources`` asks them all.
"""

from __future__ import annotations

from pathlib import Path

from data_zh.converters.promptcblue import PROMPTCBLUE_SPLITS
from data_zh.converters.slake import SLAKE_FILES
from data_zh.converters.vqa_rad import VQA_RAD_FILES


def _has_file(root: Path, names: dict[str, tuple[str, ...]]) -> bool:
    return any((root / name).is_file() for candidates in names.values() for name in candidates)


def looks_like_busi(root: Path) -> bool:
    return (root / "labels.csv").is_file() and (root / "images").is_dir()


def looks_like_laparoscopy(root: Path) -> bool:
    return (root / "classes.txt").is_file()


def looks_like_slake(root: Path) -> bool:
    return _has_file(root, SLAKE_FILES)


def looks_like_vqa_rad(root: Path) -> bool:
    return _has_file(root, VQA_RAD_FILES)


def looks_like_promptcblue(root: Path) -> bool:
    """Its .jsonl files (.json PromptCBLUE files would look like SLAKE's)."""
    return any((root / f"{stem}.jsonl").is_file() for stem in PROMPTCBLUE_SPLITS)


def looks_like_dicom(root: Path) -> bool:
    return any(path.suffix.lower() == ".dcm" and path.is_file() for path in root.rglob("*"))
