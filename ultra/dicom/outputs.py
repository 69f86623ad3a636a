"""Atomic output writing: a file appears complete or not at all, so a killed run never leaves
half a PNG, JSON or DICOM for ``--resume`` to trust. A DICOM's pixel data is written frame by
frame (:func:`write_dicom_frames`), so writing one holds one frame in memory, not the instance."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image
from pydicom import Dataset, dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

PNG_COMPRESS_LEVEL = 1
# Our own temp files end so, and only they are swept after a kill: never a user's ``.*.tmp``.
TEMP_SUFFIX = ".ultra-partial"


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[IO[bytes]]:
    """A handle on a temp file in the same folder (fsync-free), renamed over ``path`` when the
    block ends without an error and deleted when it does not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(data)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode())


def atomic_write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
    atomic_write_bytes(path, text.encode())


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Save an RGB array as PNG atomically (fast compression: these are intermediate images)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            Image.fromarray(rgb, mode="RGB").save(handle, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sweep_partial_files(outdir: Path) -> int:
    """Delete the half-written files a killed run of this tool left in ``outdir``; return how many."""
    stale = [p for p in outdir.rglob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


_PIXEL_DATA = 0x7FE00010
_MAX_ELEMENT_BYTES = 0xFFFFFFFE  # a defined length is 32 bits, and 0xFFFFFFFF means undefined


def write_dicom(path: Path, ds: Dataset) -> None:
    """Save ``ds`` as a DICOM file, encoded as its transfer syntax says, straight to disk."""
    with atomic_writer(path) as handle:
        dcmwrite(handle, ds, enforce_file_format=True)


def header_copy(ds: Dataset) -> Dataset:
    """``ds`` without its pixel data, with copies of its elements (file meta included), so that
    changing the copy's pixel module leaves ``ds``, whose frames are still to be decoded, as it is."""
    header = Dataset()
    for elem in ds:
        if elem.tag < 0x7FE00000:  # pixel data and whatever followed it (trailing padding)
            header.add(copy.copy(elem))
    meta = FileMetaDataset()
    for elem in getattr(ds, "file_meta", FileMetaDataset()):
        meta.add(copy.copy(elem))
    header.file_meta = meta
    header.preamble = getattr(ds, "preamble", None)
    return header


def write_dicom_frames(path: Path, header: Dataset, frames: Iterable[bytes], frame_bytes: int, count: int) -> None:
    """Save ``header`` (Explicit VR Little Endian, no pixel data) followed by native Pixel Data of
    ``count`` frames of ``frame_bytes`` each, written as ``frames`` yields them.

    The element's length is known before any frame is encoded, so a frame is written and dropped
    before the next is decoded: memory holds one frame whatever the instance's size.
    """
    if header.file_meta.TransferSyntaxUID != ExplicitVRLittleEndian:
        raise ValueError("frames are written as native Explicit VR Little Endian pixel data")
    if "PixelData" in header:
        raise ValueError("the header already holds pixel data")
    length = frame_bytes * count
    padded = length + length % 2
    if padded > _MAX_ELEMENT_BYTES:
        raise ValueError(f"{count} frames of {frame_bytes:,} bytes exceed one DICOM element ({padded:,} bytes)")
    vr = b"OB" if int(header.BitsAllocated) <= 8 else b"OW"
    with atomic_writer(path) as handle:
        dcmwrite(handle, header, enforce_file_format=True)
        handle.write(struct.pack("<HH", _PIXEL_DATA >> 16, _PIXEL_DATA & 0xFFFF) + vr + b"\x00\x00")
        handle.write(struct.pack("<I", padded))
        written = 0
        for chunk in frames:
            if len(chunk) != frame_bytes:
                raise ValueError(f"a frame of {len(chunk):,} bytes, not {frame_bytes:,}")
            handle.write(chunk)
            written += 1
        if written != count:
            raise ValueError(f"{written} frames written, not {count}")
        if padded != length:
            handle.write(b"\x00")
