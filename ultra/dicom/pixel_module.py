"""The masked pixel data of a written DICOM, in the source's own pixel representation.

A written DICOM must stay the instance it was: a CT stays MONOCHROME2 with its 16-bit values and
rescale, a palette image keeps its palette, so the Image Pixel module is the source's. Only what
decompression itself changes is changed: the transfer syntax becomes Explicit VR Little Endian, and
a YBR colour space that the decoder turns into RGB is written as RGB, pixel-interleaved (PS3.5
8.2). Masked pixels take the darkest value the image can show (the darkest palette entry, the lowest
stored value of a MONOCHROME2 frame, the highest of a MONOCHROME1 one, black in RGB). Frames are
decoded one at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from pydicom import Dataset
from pydicom.pixels import apply_color_lut, get_decoder
from pydicom.uid import ExplicitVRLittleEndian

from ultra.dicom.errors import DicomReadError

_ENCAPSULATION_ONLY = ("ExtendedOffsetTable", "ExtendedOffsetTableLengths")


def masked_frames(
    ds: Dataset, kept: np.ndarray, total: int, *, plugins: Sequence[str] | None = None, name: str = "<dataset>"
) -> Iterator[tuple[bytes, str]]:
    """Each frame's masked pixel bytes as written, decoded one at a time, with the photometric
    interpretation they are in (``ds`` itself is not changed)."""
    rows, columns = int(ds.Rows), int(ds.Columns)
    if kept.shape != (rows, columns):
        raise ValueError(f"mask shape {kept.shape} is not the frame's ({rows}, {columns})")
    planar = int(ds.get("PlanarConfiguration", 0) or 0)
    compressed = ds.file_meta.TransferSyntaxUID.is_compressed
    for arr, photometric in _frames(ds, total, plugins, name):
        arr = np.array(arr, dtype=arr.dtype.newbyteorder("<"), copy=True)
        arr[~kept] = _darkest(ds, arr, photometric, name)
        if arr.ndim == 3 and planar == 1 and not compressed:
            arr = arr.transpose(2, 0, 1)
        yield arr.tobytes(), photometric


def set_written_pixel_module(ds: Dataset, photometric: str) -> None:
    """The pixel module of the written pixel data (decompressed, in ``photometric``), without it."""
    if photometric != ds.PhotometricInterpretation:  # a decompressed YBR image, now RGB
        ds.PhotometricInterpretation = photometric
        ds.PlanarConfiguration = 0
    for keyword in _ENCAPSULATION_ONLY:
        if keyword in ds:
            delattr(ds, keyword)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def _frames(
    ds: Dataset, total: int, plugins: Sequence[str] | None, name: str
) -> Iterator[tuple[np.ndarray, str]]:
    """Each frame as the decoder gives it (YBR turned into RGB), with its photometric interpretation."""
    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    candidates = [""] if decoder.is_native or not plugins else list(plugins)
    for index in range(total):
        last: Exception | None = None
        for plugin in candidates:
            try:
                arr, meta = decoder.as_array(ds, index=index, as_rgb=True, decoding_plugin=plugin)
                break
            except Exception as exc:  # corrupt data or a plugin that cannot: try the next
                last = exc
        else:
            raise DicomReadError(name, f"cannot decode frame {index} to write it ({type(last).__name__})")
        if int(ds.BitsAllocated) != arr.dtype.itemsize * 8:
            raise DicomReadError(name, f"cannot write {ds.BitsAllocated}-bit pixels masked")
        yield arr, str(meta.get("photometric_interpretation", ds.PhotometricInterpretation))


def _darkest(ds: Dataset, arr: np.ndarray, photometric: str, name: str) -> object:
    """The value that shows as black in this image."""
    if photometric == "MONOCHROME2":
        return arr.min()
    if photometric == "MONOCHROME1":
        return arr.max()
    if photometric == "RGB":
        return 0
    if photometric == "PALETTE COLOR":
        entries, first, _ = (int(v) for v in ds.RedPaletteColorLookupTableDescriptor)
        entries = entries or 65536
        top = np.iinfo(arr.dtype).max
        indices = np.arange(first, min(first + entries, top + 1), dtype=np.int64).astype(arr.dtype)
        colours = apply_color_lut(indices, ds).astype(np.int64)
        return indices[int(np.argmin(colours.sum(axis=-1)))]
    raise DicomReadError(name, f"cannot write masked {photometric} pixels")
