"""Evaluation sets as gold records, read through ``data_zh`` (converters, builders, readers).

A dataset is named ("slake", "vqa_rad", "busi", "busi_heldout" — BUSI's questions in the
held-out wordings training never uses —, "laparoscopy_video" (clips, test = val), or any other
``data_zh`` converter) with the folder holding its files, or given as a unified-schema /
LLaVA-format JSONL file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from data_zh import CONVERTERS, RecordError, convert, read_llava, read_records
from data_zh.schema import Record

log = logging.getLogger(__name__)

NAMED_DATASETS = ("slake", "vqa_rad", "busi", "busi_heldout", "laparoscopy_video")
BUSI_WORDINGS = {"busi": "train", "busi_heldout": "heldout"}


def load_eval_records(dataset: str, root: str | Path | None = None, split: str = "test") -> list[Record]:
    """Gold records of one split of a dataset (``split="all"`` keeps every split)."""
    path = Path(dataset)
    if path.suffix in (".jsonl", ".json") and path.is_file():
        records = _read_record_file(path)
    elif dataset in BUSI_WORDINGS:
        from data_zh.builders import build_busi_vqa

        if root is None:
            raise ValueError(f"{dataset}: pass the BUSI folder (labels.csv, images/) as root")
        return build_busi_vqa(root, "val" if split == "test" else split, wordings=BUSI_WORDINGS[dataset])
    elif dataset == "laparoscopy_video":
        from data_zh.builders import build_laparoscopy_video

        if root is None:
            raise ValueError(
                "laparoscopy_video: pass the laparoscopy frames folder (classes.txt, test/) as root"
            )
        if split == "all":
            return [r for name in ("train", "val") for r in build_laparoscopy_video(root, name)]
        return build_laparoscopy_video(root, "val" if split == "test" else split)
    elif dataset in CONVERTERS:
        if root is None:
            raise ValueError(f"{dataset}: pass the folder holding its files as root")
        records = convert(dataset, root)
    else:
        raise ValueError(
            f"unknown dataset {dataset!r}: use one of {', '.join(sorted({*NAMED_DATASETS, *CONVERTERS}))} "
            "or a .jsonl file of records"
        )
    if split == "all":
        return records
    chosen = [r for r in records if r.split in (split, None)]
    if not chosen:
        splits = sorted({str(r.split) for r in records})
        raise ValueError(f"{dataset}: no records in split {split!r} (splits present: {', '.join(splits)})")
    return chosen


def _read_record_file(path: Path) -> list[Record]:
    """Unified-schema JSONL, else LLaVA format; the error names the file when neither reads."""
    try:
        return read_records(path)
    except RecordError as unified_error:
        try:
            return read_llava(path)
        except Exception as llava_error:
            raise ValueError(
                f"{path}: neither unified records ({unified_error}) nor LLaVA format ({llava_error})"
            ) from None


@dataclass
class MediaCheck:
    """Records whose files are all on disk, and the ids of those that are not (with the path)."""

    ready: list[Record] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)


def check_media(records: list[Record], image_root: str | Path | None = None) -> MediaCheck:
    """Split records into those whose images exist and those whose images are missing."""
    result = MediaCheck()
    for record in records:
        absent = [p for p in record.media.all_paths(image_root) if not p.exists()]
        if absent:
            result.missing.append((record.id, str(absent[0])))
        else:
            result.ready.append(record)
    if result.missing:
        log.warning(
            "%d of %d record(s) have missing media, e.g. %s: %s",
            len(result.missing),
            len(records),
            *result.missing[0],
        )
    return result
