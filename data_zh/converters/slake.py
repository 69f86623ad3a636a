"""SLAKE 1.0 (bilingual Med-VQA): one record per question, keeping every field eval breaks down by."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from data_zh.converters.base import ConversionError, load_json, require_dir
from data_zh.schema import Media, Record, qa_turns
from fusion.progress import progress_bar

logger = logging.getLogger(__name__)

SLAKE_LICENCE = "CC BY 4.0 (Liu et al., SLAKE, ISBI 2021)"
# Split name -> file names tried in order (the shared copy holds a reduced test file).
SLAKE_FILES = {
    "train": ("train.json",),
    "val": ("validate.json", "validation.json"),
    "test": ("test.json", "test_shared.json"),
}
SLAKE_MODALITY = {"CT": "CT", "MRI": "MR", "X-Ray": "X-ray"}
_KEPT = ("q_lang", "location", "content_type", "base_type", "triple", "qid", "img_id", "img_name")


def _record(item: dict[str, Any], split: str, image_root: Path) -> Record:
    answer_type = str(item["answer_type"]).strip().lower()
    answer = str(item["answer"])
    extra = {key: item[key] for key in _KEPT if key in item}
    extra["modality_raw"] = item["modality"]
    extra["answer_type_raw"] = item["answer_type"]
    if answer.strip() != answer:
        extra["answer_raw"] = answer
    return Record(
        id=f"slake-{split}-{item['qid']}",
        source="slake",
        licence=SLAKE_LICENCE,
        specialty="radiology",
        modality=SLAKE_MODALITY.get(item["modality"], "other"),
        language=item["q_lang"],
        task="closed_vqa" if answer_type == "closed" else "open_vqa",
        media=Media(root=str(image_root), images=[item["img_name"]]),
        conversations=qa_turns(str(item["question"]).strip(), answer.strip()),
        answer_type="closed" if answer_type == "closed" else "open",
        split=split,
        extra=extra,
    )


def convert_slake(root: str | Path) -> list[Record]:
    """Every split file found under root; images are expected under ``root/imgs`` (not shipped here)."""
    root = require_dir(root, "SLAKE json files (train.json, validate.json, test.json)").resolve()
    records: list[Record] = []
    found = False
    for split, names in SLAKE_FILES.items():
        path = next((root / name for name in names if (root / name).is_file()), None)
        if path is None:
            continue
        found = True
        items = load_json(path)
        bar = progress_bar(items, description=f"SLAKE {split}", total=len(items), leave=False)
        for index, item in enumerate(bar):
            try:
                records.append(_record(item, split, root / "imgs"))
            except (KeyError, ValueError) as error:
                logger.warning("%s[%d]: skipped question: %s", path, index, error)
    if not found:
        raise ConversionError(
            f"{root}: no SLAKE file found (looked for {sorted(sum(SLAKE_FILES.values(), ()))})"
        )
    return records
