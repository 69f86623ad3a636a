"""Read DICOM files into RGB frames with pydicom's own decoders and pixel processing.

It sits in ``ultra.media``, below ``ultra.dicom`` (which re-exports these names) and every other
reader of media, so none of them needs the DICOM layer to read a DICOM file. The header's rows x columns x
frames are checked against ``MediaLimits`` before any frame is decoded.

Decoding plugins are chosen through pydicom's ``decoding_plugin`` option, so a caller (or a test)
can restrict them, e.g. to ``("pydicom", "pillow")``, and see exactly the error a machine without
the ``dicom`` extra would give.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi_lut,
    convert_color_space,
    get_decoder,
)
from pydicom.uid import UID, JPEGBaseline8Bit, JPEGExtended12Bit

from fusion.pixels import voi_output_range
from ultra.media.errors import DicomReadError, MediaError
from ultra.media.limits import DEFAULT_LIMITS, MediaLimits
from ultra.media.pixels import to_uint8

logger = logging.getLogger(__name__)

INSTALL_HINT = "install the dicom extra: pip install 'ultra[dicom]'"
_YBR_TO_CONVERT = ("YBR_FULL", "YBR_FULL_422")
_RGB_ALREADY = ("RGB", "YBR_ICT", "YBR_RCT")
_JPEG_PILLOW_FIRST = ("pillow", "pylibjpeg", "pyjpegls", "gdcm", "pydicom")
_PYLIBJPEG_FIRST = ("pylibjpeg", "pyjpegls", "pillow", "gdcm", "pydicom")
DICOM_SUFFIXES = (".dcm", ".dicom")
_MAGIC_OFFSET = 128


def has_dicom_magic(head: bytes) -> bool:
    """Whether the first bytes of a file are a DICOM Part 10 preamble (``DICM`` at byte 128)."""
    return head[_MAGIC_OFFSET : _MAGIC_OFFSET + 4] == b"DICM"


def is_dicom_file(path: Path) -> bool:
    """DICOM by extension or by the ``DICM`` magic at byte 128 (many PACS exports have no suffix)."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            return has_dicom_magic(handle.read(_MAGIC_OFFSET + 4))
    except OSError:
        return False


def read_dataset(
    source: str | Path | bytes, name: str | None = None, limits: MediaLimits = DEFAULT_LIMITS
) -> Dataset:
    """Parse a DICOM Part 10 file (a path or its bytes), raising DicomReadError for anything else.

    The file size is checked before it is read and the header's frame size before any decoding.
    """
    label = name or (Path(source).name if not isinstance(source, bytes) else "<bytes>")
    if isinstance(source, bytes):
        data: bytes | None = source
        size = len(source)
    else:
        data = None
        try:
            size = Path(source).stat().st_size
        except OSError as exc:
            raise DicomReadError(label, f"cannot open file ({exc.strerror})") from None
    if size == 0:
        raise DicomReadError(label, "empty file")
    try:
        limits.check_bytes(label, size)
    except MediaError as error:
        raise DicomReadError(label, error.reason) from None
    try:
        ds = dcmread(io.BytesIO(data) if data is not None else Path(source))
    except InvalidDicomError:
        raise DicomReadError(label, "not a DICOM file (no DICM preamble)") from None
    except Exception as exc:  # pydicom raises many types for corrupt headers
        raise DicomReadError(label, f"unreadable DICOM header ({type(exc).__name__})") from None
    check_frame_size(ds, label, limits)
    return ds


def dicom_modality(source: str | Path, name: str | None = None) -> str:
    """The header's Modality (``US``, ``CT``, ``MR`` …; ``""`` when absent), read without pixel data,
    so a caller can say that an image is not ultrasound before a model answers about it."""
    label = name or Path(source).name
    try:
        ds = dcmread(Path(source), stop_before_pixels=True, specific_tags=["Modality"])
    except InvalidDicomError:
        raise DicomReadError(label, "not a DICOM file (no DICM preamble)") from None
    except OSError as exc:
        raise DicomReadError(label, f"cannot open file ({exc.strerror})") from None
    except Exception as exc:  # pydicom raises many types for corrupt headers
        raise DicomReadError(label, f"unreadable DICOM header ({type(exc).__name__})") from None
    return str(ds.get("Modality", "") or "").strip().upper()


def check_frame_size(ds: Dataset, label: str, limits: MediaLimits) -> None:
    """Refuse, from the header alone, pixel data whose rows x columns x frames exceed ``limits``."""
    try:
        rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    except (TypeError, ValueError):
        raise DicomReadError(label, "unreadable Rows/Columns in the header") from None
    if rows and columns:
        try:
            limits.check_total(label, frame_count(ds), columns, rows, "DICOM pixel data")
        except MediaError as error:  # the same reason, as the DICOM layer's error type
            raise DicomReadError(label, error.reason) from None


def frame_count(ds: Dataset) -> int:
    """Number of frames in the pixel data (1 for single-frame images)."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _fastest_first(tsyntax: UID, available: Sequence[str]) -> list[str]:
    """Plugins in speed order measured here: Pillow for 8/12-bit JPEG, pylibjpeg for everything else."""
    preferred = _JPEG_PILLOW_FIRST if tsyntax in (JPEGBaseline8Bit, JPEGExtended12Bit) else _PYLIBJPEG_FIRST
    return sorted(available, key=lambda name: preferred.index(name) if name in preferred else len(preferred))


def _decode(ds: Dataset, index: int, plugins: Sequence[str] | None, label: str) -> tuple[np.ndarray, str]:
    """Decode one frame, returning the array and the photometric interpretation it is really in."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomReadError(label, "no pixel data")
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if tsyntax is None:
        raise DicomReadError(label, "no transfer syntax in the file meta information")
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise DicomReadError(label, f"unsupported transfer syntax {tsyntax.name} ({tsyntax})") from None
    if decoder.is_native:
        candidates = [""]
    else:
        available = _fastest_first(tsyntax, decoder.available_plugins)
        candidates = list(available) if plugins is None else [p for p in plugins if p in available]
        if not candidates:
            raise DicomReadError(label, f"no decoder for {tsyntax.name} is installed; {INSTALL_HINT}")
    last_error: Exception | None = None
    for plugin in candidates:
        try:
            arr, meta = decoder.as_array(ds, index=index, as_rgb=False, decoding_plugin=plugin)
            return arr, str(meta.get("photometric_interpretation", ds.PhotometricInterpretation))
        except Exception as exc:  # corrupt or truncated data: try the next plugin, then report
            last_error = exc
            logger.debug("%s: plugin %r failed on frame %d: %s", label, plugin, index, exc)
    raise DicomReadError(label, f"cannot decode frame {index} ({type(last_error).__name__}: {last_error})")


def _monochrome_to_rgb(arr: np.ndarray, ds: Dataset, index: int, photometric: str) -> np.ndarray:
    values = apply_modality_lut(arr, ds)
    out_range = voi_output_range(ds)
    if out_range is not None:
        view = min(index, _window_count(ds) - 1)
        values = apply_voi_lut(values, ds, index=view)
        gray = to_uint8(values, *out_range)
    else:
        gray = to_uint8(values, float(values.min()), float(values.max()))
    if photometric == "MONOCHROME1":
        gray = 255 - gray
    return np.repeat(gray[..., None], 3, axis=2)


def _window_count(ds: Dataset) -> int:
    if "VOILUTSequence" in ds:
        return max(1, len(ds.VOILUTSequence))
    elem = ds["WindowCenter"]
    return max(1, elem.VM)


_PALETTE_KEYWORDS = tuple(
    f"{prefix}{colour}PaletteColorLookupTable{part}"
    for colour in ("Red", "Green", "Blue", "Alpha")
    for prefix, part in (("", "Descriptor"), ("", "Data"), ("Segmented", "Data"))
)


class _PaletteSource:
    """A dataset's palette, hashed by its LUT values, so one scanner's table is expanded once."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        digest = hashlib.sha1()
        for keyword in _PALETTE_KEYWORDS:
            value = ds.get(keyword)
            digest.update(keyword.encode() + (value if isinstance(value, bytes) else repr(value).encode()))
        digest.update(repr(getattr(ds, "original_encoding", None)).encode())
        self.key = digest.hexdigest()

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _PaletteSource) and other.key == self.key


@functools.lru_cache(maxsize=16)
def _palette_table(source: _PaletteSource) -> tuple[int, np.ndarray]:
    """(first mapped value, read-only uint8 RGB table over every index) via pydicom's apply_color_lut.

    Memoised because expanding a segmented 16-bit palette takes pydicom ~0.2 s, and every instance
    from the same scanner carries the same palette.
    """
    descriptor = source.ds.RedPaletteColorLookupTableDescriptor
    first_map, entries = int(descriptor[1]), int(descriptor[0]) or 65536
    index_dtype = np.int32 if first_map < 0 else np.uint16 if entries > 256 or first_map else np.uint8
    table = apply_color_lut(np.arange(first_map, first_map + entries).astype(index_dtype), source.ds)[..., :3]
    if table.dtype.itemsize > 1:
        table = (table >> 8).astype(np.uint8) if int(table.max()) > 255 else table.astype(np.uint8)
    table.flags.writeable = False
    return first_map, table


def _palette_to_rgb(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    first_map, table = _palette_table(_PaletteSource(ds))
    entries = len(table)
    if first_map == 0 and arr.dtype.kind == "u":
        return table[arr] if entries >= 2 ** (8 * arr.dtype.itemsize) else table[np.minimum(arr, entries - 1)]
    return table[np.clip(arr.astype(np.int64) - first_map, 0, entries - 1)]


def frame_to_rgb(arr: np.ndarray, photometric: str, ds: Dataset, index: int, label: str) -> np.ndarray:
    """Convert one decoded frame to an (H, W, 3) uint8 RGB array, whatever its colour space."""
    try:
        if photometric in ("MONOCHROME1", "MONOCHROME2"):
            return _monochrome_to_rgb(arr, ds, index, photometric)
        if photometric == "PALETTE COLOR":
            return _palette_to_rgb(arr, ds)
        if photometric in _YBR_TO_CONVERT:
            arr = convert_color_space(arr, photometric, "RGB")
        elif photometric not in _RGB_ALREADY:
            raise DicomReadError(label, f"unsupported photometric interpretation {photometric}")
    except DicomReadError:
        raise
    except Exception as exc:
        raise DicomReadError(
            label, f"cannot convert {photometric} to RGB ({type(exc).__name__}: {exc})"
        ) from None
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise DicomReadError(label, f"unexpected pixel array shape {arr.shape} for {photometric}")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        high = float(2 ** int(ds.get("BitsStored", 8)) - 1)
        arr = to_uint8(arr, 0.0, high)
    return np.ascontiguousarray(arr)


def decode_frame_rgb(
    ds: Dataset, index: int = 0, *, plugins: Sequence[str] | None = None, name: str = "<dataset>"
) -> np.ndarray:
    """Decode frame ``index`` of a parsed dataset into an (H, W, 3) uint8 RGB array."""
    total = frame_count(ds)
    if not 0 <= index < total:
        raise DicomReadError(name, f"frame {index} out of range (the file has {total} frames)")
    arr, photometric = _decode(ds, index, plugins, name)
    return frame_to_rgb(arr, photometric, ds, index, name)


def load_dicom_image(
    source: str | Path | bytes,
    frame: int = 0,
    *,
    plugins: Sequence[str] | None = None,
    name: str | None = None,
    limits: MediaLimits = DEFAULT_LIMITS,
) -> Image.Image:
    """Read one frame of a DICOM file (a path or its bytes) as an RGB PIL image (colour conversion
    and VOI/windowing applied).

    ``plugins`` restricts pydicom's decoding plugins (None = all installed); an error names the file
    by ``name`` (default: the file name, or ``<bytes>``).
    """
    label = name or (Path(source).name if not isinstance(source, bytes) else "<bytes>")
    ds = read_dataset(source, label, limits)
    return Image.fromarray(decode_frame_rgb(ds, frame, plugins=plugins, name=label), mode="RGB")
