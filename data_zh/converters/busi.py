"""BUSI layout (``labels.csv`` + ``images/``): the real BUSI copy, or any user folder in that layout."""

from __future__ import annotations

import csv
import logging
import os
import re
from functools import cache
from pathlib import Path, PurePosixPath

from data_zh.converters.base import ConversionError, require_dir
from data_zh.masks import MASKS
from data_zh.schema import Labels, Media, Reasoning, Record, qa_turns
from data_zh.splits import split_lookup
from fusion.progress import progress_bar

logger = logging.getLogger(__name__)

BUSI_LICENCE = "CC BY 4.0 (Al-Dhabyani et al., Data in Brief 28 (2020) 104863)"
BUSI_LABELS = ("benign", "malignant", "normal")
LABEL_ZH = {"benign": "良性", "malignant": "恶性", "normal": "正常"}
CLASSIFICATION_QUESTION = "这张乳腺超声图像的诊断是良性、恶性还是正常？"


def read_busi_labels(root: str | Path) -> dict[str, dict[str, str]]:
    """Image path (relative to root) -> its labels.csv row; bad rows are logged and skipped."""
    root = require_dir(root, "a BUSI-layout folder with labels.csv and images/")
    csv_path = root / "labels.csv"
    if not csv_path.is_file():
        raise ConversionError(f"{csv_path}: labels.csv not found (BUSI layout: labels.csv + images/)")
    rows: dict[str, dict[str, str]] = {}
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"image_path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ConversionError(f"{csv_path}: missing column(s) {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            path, label = (row.get("image_path") or "").strip(), (row.get("label") or "").strip().lower()
            if label not in BUSI_LABELS:
                logger.warning(
                    "%s:%d: skipped %r: label %r is not one of %s", csv_path, line, path, label, BUSI_LABELS
                )
                continue
            if not (root / path).is_file():
                logger.warning("%s:%d: skipped: image %s not found", csv_path, line, root / path)
                continue
            if path in rows:
                logger.warning("%s:%d: skipped duplicate row for %r", csv_path, line, path)
                continue
            rows[path] = {**row, "image_path": path, "label": label}
    return rows


def busi_mask_finder(root: Path):
    """``masks_of(image)``: the mask files of one image, relative to ``root``, sorted.

    BUSI names a lesion's mask ``<image stem>_mask.png`` and a second lesion's ``_mask_1.png``;
    they lie beside the image (BUSI's own layout) or in ``masks/`` mirroring ``images/`` (the
    shared copy, where the two-lesion masks are already merged). Each folder is listed once.
    """

    @cache
    def listing(folder: PurePosixPath) -> tuple[str, ...]:
        directory = root / folder
        return tuple(sorted(os.listdir(directory))) if directory.is_dir() else ()

    def masks_of(image: str) -> list[str]:
        path = PurePosixPath(image)
        pattern = re.compile(re.escape(path.stem) + r"_mask(?:_\d+)?\.png", re.IGNORECASE)
        folders = [path.parent]
        if path.parts[0] == "images":
            folders.insert(0, PurePosixPath("masks", *path.parent.parts[1:]))
        names = [(folder, name) for folder in folders for name in listing(folder)]
        return [(folder / name).as_posix() for folder, name in names if pattern.fullmatch(name)]

    return masks_of


def busi_record(
    root: Path, path: str, row: dict[str, str], split: str | None, masks: list[str] | None = None
) -> Record:
    """The labelled classification record of one image, with its mask files (``extra["masks"]``,
    their union is the lesion; all-zero for a normal image)."""
    label = row["label"]
    perception = "未见明确局灶性病灶" if label == "normal" else "可见局灶性病灶"
    extra: dict[str, object] = {"busi_label": label, MASKS: masks or []}
    if row.get("caption_en"):
        extra["caption_en"] = row["caption_en"]
    return Record(
        id="busi-" + Path(path).with_suffix("").as_posix().removeprefix("images/").replace(" ", "_"),
        source="busi",
        licence=BUSI_LICENCE,
        specialty="breast",
        modality="US",
        language="zh",
        task="lesion_classification",
        media=Media(root=str(root.resolve()), images=[path]),
        conversations=qa_turns(CLASSIFICATION_QUESTION, LABEL_ZH[label]),
        answer_type="closed",
        labels=Labels(classes=[label]),
        reasoning=Reasoning(perception=perception, conclusion=LABEL_ZH[label]),
        split=split,
        extra=extra,
    )


def convert_busi(root: str | Path, split_map: dict[str, str] | None = None) -> list[Record]:
    """One classification record per image of labels.csv, tagged with its committed split when
    known, with its lesion mask files."""
    root = Path(root)
    rows = read_busi_labels(root)
    split_map = split_lookup("busi") if split_map is None else split_map
    masks_of = busi_mask_finder(root)
    return [
        busi_record(root, path, row, split_map.get(path), masks_of(path))
        for path, row in progress_bar(rows.items(), description="BUSI", total=len(rows), leave=False)
    ]
