"""Reading input images for ``ultra ask`` (PNG/JPEG or DICOM by suffix or magic)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


class InputImageError(ValueError):
    """An input image that cannot be read; the message names the file and the reason."""


def is_dicom_file(path: Path) -> bool:
    """DICOM by extension or by the ``DICM`` magic at byte 128 (many PACS exports have no suffix)."""
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def read_image(path: str | Path, frame: int = 0) -> Image.Image:
    """An RGB image from PNG/JPEG or a DICOM file (frame ``frame``, VOI/windowing applied)."""
    path = Path(path)
    if not path.is_file():
        raise InputImageError(f"{path}: file not found")
    if is_dicom_file(path):
        from ultra.dicom import DicomReadError, load_dicom_image

        try:
            return load_dicom_image(path, frame=frame)
        except DicomReadError as error:
            raise InputImageError(f"{path}: {error}") from None
    if frame != 0:
        raise InputImageError(f"{path}: --frame applies to DICOM files only")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise InputImageError(f"{path}: not a readable image ({error})") from None
