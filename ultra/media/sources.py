"""``read_image``: one image from whatever a caller holds — a path, bytes, a ``data:`` URL, an
array or a PIL image — as RGB; every failure is a MediaError naming the source by its id.

``max_side`` makes every image small as it is read (what a model needs, not what was sent);
``account`` counts the decoded bytes against a request's and a server's budget."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ultra.media.dicom import has_dicom_magic, is_dicom_file, load_dicom_image
from ultra.media.errors import MediaError
from ultra.media.images import decode_image, decoded_bytes, shrink
from ultra.media.limits import DEFAULT_LIMITS, DecodeAccount, MediaLimits
from ultra.media.pixels import to_rgb

ImageSource = str | Path | bytes | bytearray | memoryview | np.ndarray | Image.Image

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def data_url_bytes(url: str, source_id: str = "data URL", limits: MediaLimits = DEFAULT_LIMITS) -> bytes:
    """The payload of a base64 ``data:`` URL (``data:image/png;base64,...``); its media type is not
    trusted, the content is sniffed by the reader."""
    header, comma, payload = url.partition(",")
    if not comma:
        raise MediaError(source_id, "malformed data URL (no comma before the data)")
    if not header.lower().endswith(";base64"):
        raise MediaError(source_id, "data URL is not base64-encoded (expected data:<type>;base64,...)")
    payload = "".join(payload.split())
    limits.check_bytes(source_id, len(payload) * 3 // 4)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(source_id, "data URL holds invalid base64") from None


@dataclass(frozen=True)
class _Reading:
    """How one image is read: its limits, the size it is shrunk to, the account it is held in."""

    limits: MediaLimits
    max_side: int | None
    account: DecodeAccount | None

    def decode(self, source: Path | bytes, source_id: str, frame: int) -> Image.Image:
        return decode_image(
            source, source_id, frame, self.limits, max_side=self.max_side, account=self.account
        )

    def dicom(self, source: Path | bytes, source_id: str, frame: int) -> Image.Image:
        """A DICOM frame, shrunk after decoding (its size is known only once the dataset is read)."""
        full = load_dicom_image(source, frame, name=source_id, limits=self.limits)
        nbytes = decoded_bytes(full.mode, *full.size)
        if self.account is None:
            return shrink(full, self.max_side)
        self.account.hold(source_id, nbytes)
        try:
            small = shrink(full, self.max_side)
            del full
        finally:
            self.account.release(nbytes)
        self.account.hold(source_id, decoded_bytes(small.mode, *small.size), "keeping it")
        return small


def _read_bytes(data: bytes, source_id: str, frame: int, reading: _Reading) -> Image.Image:
    if not data:
        raise MediaError(source_id, "empty data")
    if has_dicom_magic(data[:132]):
        return reading.dicom(data, source_id, frame)
    return reading.decode(data, source_id, frame)


def _read_file(path: Path, source_id: str, frame: int, reading: _Reading) -> Image.Image:
    if path.is_dir():
        raise MediaError(source_id, "is a folder, not an image (a video's frames? read it as a video)")
    if not path.is_file():
        raise MediaError(source_id, "file not found")
    if is_dicom_file(path):
        return reading.dicom(path, source_id, frame)
    return reading.decode(path, source_id, frame)


def read_image(
    source: ImageSource,
    frame: int = 0,
    *,
    limits: MediaLimits = DEFAULT_LIMITS,
    source_id: str | None = None,
    max_side: int | None = None,
    account: DecodeAccount | None = None,
) -> Image.Image:
    """An RGB image from a path (PNG/JPEG/BMP/TIFF/...; DICOM by suffix or ``DICM`` magic), raw
    bytes, a base64 ``data:`` URL, a numpy array or a PIL image.

    ``frame`` picks a frame of a multi-frame DICOM (or multi-page image). Sizes are checked against
    ``limits`` before decoding. Errors are MediaError naming ``source_id`` (default: the path as
    given, ``"bytes"``, ``"data URL"``); http(s) URLs are refused, never fetched. ``max_side``
    bounds the longer side of the result (encoded images are shrunk as they are decoded, JPEGs
    decoded at a reduced scale); ``account`` holds their decoded bytes (DecodeBudgetError past it).
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    reading = _Reading(limits, max_side, account)
    if isinstance(source, Image.Image | np.ndarray):
        kind = "PIL image" if isinstance(source, Image.Image) else "array"
        if frame:
            raise MediaError(source_id or kind, f"frame {frame} asked of a {kind} (frames apply to files)")
        return shrink(to_rgb(source, source_id or kind), max_side)
    if isinstance(source, bytes | bytearray | memoryview):
        return _read_bytes(bytes(source), source_id or "bytes", frame, reading)
    if isinstance(source, str):
        if source[:5].lower() == "data:":
            sid = source_id or "data URL"
            return _read_bytes(data_url_bytes(source, sid, limits), sid, frame, reading)
        if _URL.match(source):
            raise MediaError(
                source_id or source.split("?", 1)[0],
                "URLs are not fetched; download the file and pass its path, bytes or a data: URL",
            )
        return _read_file(Path(source), source_id or source, frame, reading)
    if isinstance(source, Path):
        return _read_file(source, source_id or str(source), frame, reading)
    raise MediaError(source_id or type(source).__name__, f"unsupported input type {type(source).__name__}")
