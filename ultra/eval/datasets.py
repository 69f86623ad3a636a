"""Evaluation sets as gold records, read through ``data_zh.sources`` (one registry of sources).

A dataset is a ``data_zh.sources`` entry with the folder holding its files ("slake", "vqa_rad",
"busi_vqa", "laparoscopy_video", ...; ``ultra data sources`` lists them), one of the names the
eval command has long accepted ("busi", "busi_heldout" — BUSI's questions in the held-out
wordings training never uses —, "dicom", "laparoscopy"), or a unified-schema / LLaVA-format
JSONL file. ``test`` means the source's own test split (``val`` where it has none).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from data_zh import RecordError, read_llava, read_records
from data_zh.schema import Record

log = logging.getLogger(__name__)


def dataset_names() -> list[str]:
    """Every name ``load_eval_records`` takes besides a .jsonl file."""
    from data_zh.sources import EVALUATION_NAMES, SOURCES

    return sorted({*SOURCES, *EVALUATION_NAMES})


def load_eval_records(dataset: str, root: str | Path | None = None, split: str = "test") -> list[Record]:
    """Gold records of one split of a dataset (``split="all"`` keeps every split)."""
    path = Path(dataset)
    if path.suffix in (".jsonl", ".json") and path.is_file():
        return _records_of_split(dataset, _read_record_file(path), split)
    from data_zh.sources import EVALUATION_NAMES, SOURCES, load_records, resolve_source
    from fusion.registry import UnknownEntryError

    try:
        ref = resolve_source(dataset, SOURCES, EVALUATION_NAMES)
    except UnknownEntryError:
        raise ValueError(
            f"unknown dataset {dataset!r}: use one of {', '.join(dataset_names())} or a .jsonl file of records"
        ) from None
    spec = SOURCES[ref.source]
    wanted = spec.test_split if split == "test" else split
    records = load_records(ref.source, root, split=wanted, **ref.options)
    if not records:
        raise ValueError(f"{dataset}: no records in split {wanted!r}")
    return records


def _records_of_split(dataset: str, records: list[Record], split: str) -> list[Record]:
    """A file's records of ``split`` (records without a split belong to every split)."""
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
