"""What self-training reads: any data source of the registry, plus unlabelled image and DICOM
folders, as one record per image.

``ImageSource.kind`` names an entry of ``IMAGE_SOURCES`` (the data sources and the two folder
kinds, whose DICOM check is ``ultra.media``'s, above ``data_zh``) or one of the short names in
``SELFTRAIN_NAMES`` that self-training configs use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from data_zh.schema import DicomFrameRef, Media, Record
from data_zh.sources import SOURCES, DataSourceSpec, SourceRef, load_records, resolve_source
from fusion.registry import Registry, UnknownEntryError
from ultra.media import is_dicom_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class ImageSourceSettings(Protocol):
    """What ``image_records`` reads of a config's ``ImageSource``."""

    kind: str
    path: str
    split: str | None
    max_images: int | None


def _anonymous_id(relative: str) -> str:
    """An id from the path's hash: file names may carry patient identifiers, ids never do."""
    return "img-" + hashlib.sha256(relative.encode("utf-8")).hexdigest()[:16]


def _image_record(root: Path, relative: str, dicom: bool) -> Record:
    media = (
        Media(root=str(root.resolve()), dicom=[DicomFrameRef(path=relative)])
        if dicom
        else Media(root=str(root.resolve()), images=[relative])
    )
    return Record(
        id=_anonymous_id(relative),
        source="selftrain-folder",
        licence="unknown",
        specialty="unknown",
        modality="US",
        language="zh",
        task="open_vqa",
        media=media,
    )


def _folder_records(root: Path, dicom_only: bool) -> list[Record]:
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: image folder not found")
    records = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        is_dicom = path.suffix.lower() == ".dcm" or is_dicom_file(path)
        if is_dicom or (not dicom_only and path.suffix.lower() in IMAGE_SUFFIXES):
            records.append(_image_record(root, relative, is_dicom))
    return records


def _image_folder(root: Path, split: str) -> list[Record]:
    return _folder_records(root, dicom_only=False)


def _dicom_folder(root: Path, split: str) -> list[Record]:
    return _folder_records(root, dicom_only=True)


# The data sources plus unlabelled folders (their DICOM check is ultra.media's, above data_zh).
IMAGE_SOURCES: Registry[DataSourceSpec] = SOURCES.extended(
    {
        "image_folder": DataSourceSpec(
            "unlabelled PNG/JPEG/DICOM files under root, recursively (one record per file)",
            _image_folder,
            root="a folder of images",
        ),
        "dicom_folder": DataSourceSpec(
            "unlabelled DICOM files under root, recursively (first frame)",
            _dicom_folder,
            root="a folder of DICOM files",
        ),
    }
)
SELFTRAIN_NAMES: Registry[SourceRef] = Registry(
    "self-training image source",
    {
        "folder": SourceRef("image_folder"),
        "dicom": SourceRef("dicom_folder"),
        "records": SourceRef("records"),
        "busi": SourceRef("busi_vqa", default_split="selftrain_pool"),
    },
)


def _one_per_image(records: Sequence[Record]) -> list[Record]:
    """The first record of each distinct image set (a builder gives several questions per image)."""
    seen: set[tuple] = set()
    unique = []
    for record in records:
        key = tuple(str(path) for path in record.media.all_paths())
        if record.media.count and key not in seen:
            seen.add(key)
            unique.append(record)
    return unique


def image_records(source: ImageSourceSettings) -> list[Record]:
    """One record per image of the source (labels kept where the source has them)."""
    root = Path(source.path)
    ref = resolve_source(source.kind, IMAGE_SOURCES, SELFTRAIN_NAMES)
    split = source.split or ref.default_split
    records = _one_per_image(
        load_records(ref.source, root, split=split, sources=IMAGE_SOURCES, **ref.options)
    )
    if source.max_images is not None:
        records = records[: source.max_images]
    if not records:
        raise ValueError(f"{root}: no images found ({source.kind} source)")
    return records


def check_image_source_kind(kind: str) -> str:
    """``kind`` if it names an image source, else a ValueError (what a config validator raises)
    with the registry's message listing the known ones."""
    try:
        resolve_source(kind, IMAGE_SOURCES, SELFTRAIN_NAMES)
    except UnknownEntryError as error:
        known = ", ".join(sorted({*IMAGE_SOURCES, *SELFTRAIN_NAMES}))
        raise ValueError(f"unknown image source {kind!r}; known: {known}") from error
    return kind
