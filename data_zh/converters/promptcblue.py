"""PromptCBLUE (Chinese medical NLP in prompt form): text-only instructions. Non-commercial; tests only."""

from __future__ import annotations

import logging
from pathlib import Path

from data_zh.converters.base import ConversionError, require_dir
from data_zh.io import jsonl_lines, parse_json_bytes
from data_zh.schema import Record, Turn
from fusion.progress import progress_bar

logger = logging.getLogger(__name__)

PROMPTCBLUE_LICENCE = "PromptCBLUE: academic research only, no commercial use (CBLUE data: Alibaba Tianchi)"
PROMPTCBLUE_SPLITS = {"train": "train", "dev": "val", "test": "test"}


def convert_promptcblue(root: str | Path) -> list[Record]:
    """Every ``train/dev/test`` ``.jsonl`` (or ``.json`` with one object per line) under root."""
    root = require_dir(root, "PromptCBLUE train/dev/test .jsonl files").resolve()
    records: list[Record] = []
    found = False
    for stem, split in PROMPTCBLUE_SPLITS.items():
        path = next((p for p in (root / f"{stem}.jsonl", root / f"{stem}.json") if p.is_file()), None)
        if path is None:
            continue
        found = True
        lines = list(jsonl_lines(path))
        for line_no, line in progress_bar(lines, description=f"PromptCBLUE {split}", leave=False):
            try:
                item = parse_json_bytes(line)
                choices = item.get("answer_choices") or []
                closed = item.get("task_type") == "cls" and item["target"] in choices
                records.append(
                    Record(
                        id=f"promptcblue-{item['sample_id']}",
                        source="promptcblue",
                        licence=PROMPTCBLUE_LICENCE,
                        specialty="general_medicine",
                        modality="text",
                        language="zh",
                        task="text_instruction",
                        conversations=[
                            Turn(role="user", content=item["input"]),
                            Turn(role="assistant", content=item["target"]),
                        ],
                        answer_type="closed" if closed else "open",
                        split=split,
                        extra={
                            k: item[k]
                            for k in ("task_type", "task_dataset", "sample_id", "answer_choices")
                            if k in item
                        },
                    )
                )
            except (KeyError, ValueError) as error:
                logger.warning("%s:%d: skipped item: %s", path, line_no, error)
    if not found:
        raise ConversionError(f"{root}: no PromptCBLUE file found (train/dev/test .jsonl)")
    return records
