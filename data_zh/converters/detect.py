"""Which source a folder is laid out as, judged from the files each converter looks for.

Lets ``ultra data stats FOLDER`` convert a source folder on the fly; nothing is read beyond names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from data_zh.converters.promptcblue import PROMPTCBLUE_SPLITS
from data_zh.converters.slake import SLAKE_FILES
from data_zh.converters.vqa_rad import VQA_RAD_FILES


def _has_file(root: Path, names: dict[str, tuple[str, ...]]) -> bool:
    return any((root / name).is_file() for candidates in names.values() for name in candidates)


def _has_dicom(root: Path) -> bool:
    return any(path.suffix.lower() == ".dcm" and path.is_file() for path in root.rglob("*"))


# source -> does the folder hold that converter's files? (.json PromptCBLUE files would look like SLAKE's)
LAYOUTS: dict[str, Callable[[Path], bool]] = {
    "busi": lambda root: (root / "labels.csv").is_file() and (root / "images").is_dir(),
    "laparoscopy": lambda root: (root / "classes.txt").is_file(),
    "slake": lambda root: _has_file(root, SLAKE_FILES),
    "vqa_rad": lambda root: _has_file(root, VQA_RAD_FILES),
    "promptcblue": lambda root: any((root / f"{stem}.jsonl").is_file() for stem in PROMPTCBLUE_SPLITS),
}


def detect_sources(root: str | Path) -> list[str]:
    """The sources whose layout ``root`` matches (a folder of ``.dcm`` files is ``dicom`` when
    nothing else matches); empty when none does."""
    root = Path(root)
    matches = [name for name, matches_layout in LAYOUTS.items() if matches_layout(root)]
    if not matches and _has_dicom(root):
        matches.append("dicom")
    return matches
