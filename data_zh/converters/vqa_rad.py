"""VQA-RAD (English radiology VQA, the standard MEVF train/test split)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from data_zh.converters.base import ConversionError, load_json, require_dir
from data_zh.schema import Media, Record, qa_turns
from fusion.progress import progress_bar

logger = logging.getLogger(__name__)

VQA_RAD_LICENCE = "CC0 1.0 (Lau et al., Scientific Data 2018)"
VQA_RAD_FILES = {"train": ("trainset.json",), "test": ("testset.json", "testset_shared.json")}
_KEPT = ("qid", "image_name", "image_organ", "question_type", "phrase_type")


def _record(item: dict[str, Any], split: str, image_root: Path) -> Record:
    answer_type = str(item["answer_type"]).strip().lower()
    answer = str(item["answer"])
    extra = {key: item[key] for key in _KEPT if key in item}
    extra["location"] = item.get("image_organ")
    extra["answer_type_raw"] = item["answer_type"]
    if not isinstance(item["answer"], str) or answer.strip() != answer:
        extra["answer_raw"] = item["answer"]
    return Record(
        id=f"vqa_rad-{split}-{item['qid']}",
        source="vqa_rad",
        licence=VQA_RAD_LICENCE,
        specialty="radiology",
        modality="other",
        language="en",
        task="closed_vqa" if answer_type == "closed" else "open_vqa",
        media=Media(root=str(image_root), images=[item["image_name"]]),
        conversations=qa_turns(str(item["question"]).strip(), answer.strip()),
        answer_type="closed" if answer_type == "closed" else "open",
        split=split,
        extra=extra,
    )


def convert_vqa_rad(root: str | Path) -> list[Record]:
    """Train and test files under root; images are expected under ``root/images`` (not shipped here)."""
    root = require_dir(root, "VQA-RAD trainset.json / testset.json").resolve()
    records: list[Record] = []
    found = False
    for split, names in VQA_RAD_FILES.items():
        path = next((root / name for name in names if (root / name).is_file()), None)
        if path is None:
            continue
        found = True
        items = load_json(path)
        bar = progress_bar(items, description=f"VQA-RAD {split}", total=len(items), leave=False)
        for index, item in enumerate(bar):
            try:
                records.append(_record(item, split, root / "images"))
            except (KeyError, ValueError) as error:
                logger.warning("%s[%d]: skipped question: %s", path, index, error)
    if not found:
        raise ConversionError(f"{root}: no VQA-RAD file found (trainset.json / testset.json)")
    return records
