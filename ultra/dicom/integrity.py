"""Say what is wrong with a file that pydicom parsed leniently: a cut-off or random file after a
``DICM`` preamble parses into a few junk elements, which must read "truncated or not a DICOM file",
not "modality missing"."""

from __future__ import annotations

from pydicom import Dataset

from ultra.dicom.errors import DicomReadError

_NATIVE_BITS = {8, 16, 32}


def check_complete(ds: Dataset, label: str) -> None:
    """Raise :class:`DicomReadError` when the parsed header cannot be a whole DICOM instance."""
    if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
        raise DicomReadError(label, "truncated or not a DICOM file (no SOP Class/Instance UID)")
    expected = _native_pixel_bytes(ds)
    if expected is not None and len(ds.PixelData) < expected:
        raise DicomReadError(label, f"truncated (pixel data has {len(ds.PixelData)} of {expected} bytes)")


def _native_pixel_bytes(ds: Dataset) -> int | None:
    """Bytes the uncompressed pixel data must hold, or None when it is compressed or not described."""
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None)
    if "PixelData" not in ds or syntax is None or syntax.is_compressed:
        return None
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples, bits = int(ds.get("SamplesPerPixel", 1)), int(ds.BitsAllocated)
        frames = max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (AttributeError, TypeError, ValueError):
        return None
    if bits not in _NATIVE_BITS:
        return None
    if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
        samples = 2  # two luminance samples share one pair of chroma samples
    return rows * columns * samples * frames * bits // 8
