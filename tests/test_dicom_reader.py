"""The DICOM reader on every real shared file, a JPEG-LS file made here, and broken inputs."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, JPEGLSLossless

from ultra.media import DicomReadError, frame_count, load_dicom_image, read_dataset

JPEG_LOSSLESS = "us/JPGLosslessP14SV1_1s_1f_8b.dcm"
NO_EXTRA_PLUGINS = ("pydicom", "pillow")  # what a machine without the `dicom` extra has


def _manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "dicom" / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _manifest_rows() -> list[str]:
    from tests.conftest import shared_data_root

    path = shared_data_root() / "dicom" / "manifest.csv"
    if not path.is_file():
        return ["<missing>"]
    with open(path, newline="") as handle:
        return [row["file"] for row in csv.DictReader(handle)]


@pytest.mark.parametrize("relpath", _manifest_rows())
def test_every_shared_file_decodes_to_rgb_of_its_size(shared_data: Path, relpath: str) -> None:
    row = next(r for r in _manifest(shared_data) if r["file"] == relpath)
    path = shared_data / "dicom" / relpath
    last = int(row["frames"]) - 1
    for frame in {0, last}:
        image = load_dicom_image(path, frame=frame)
        assert image.mode == "RGB"
        assert image.size == (int(row["cols"]), int(row["rows"]))
        pixels = np.asarray(image)
        assert pixels.std() > 1.0, f"{relpath} frame {frame} decoded to a flat image"
    assert frame_count(read_dataset(path)) == int(row["frames"])


def test_colour_encodings_of_the_same_image_agree(shared_data: Path) -> None:
    us = shared_data / "dicom" / "us"

    def rgb(name: str) -> np.ndarray:
        return np.asarray(load_dicom_image(us / name)).astype(np.int16)

    assert np.array_equal(rgb("color-pl.dcm"), rgb("color-px.dcm"))  # planar vs interleaved
    assert np.array_equal(rgb("OBXXXX1A_2frame.dcm"), rgb("OBXXXX1A_rle_2frame.dcm"))  # RLE
    assert np.array_equal(rgb("US1_UNCR.dcm"), rgb("examples_jpeg2k.dcm"))  # YBR_RCT, lossless
    assert np.abs(rgb("US1_UNCR.dcm") - rgb("US1_J2KI.dcm")).mean() < 4  # YBR_ICT, lossy
    palette = rgb("OBXXXX1A_2frame.dcm")
    assert not np.array_equal(palette[..., 0], palette[..., 2]), "palette LUT was not applied"


def test_jpeg_lossless_needs_the_dicom_extra(shared_data: Path) -> None:
    path = shared_data / "dicom" / JPEG_LOSSLESS
    with pytest.raises(DicomReadError) as info:
        load_dicom_image(path, plugins=NO_EXTRA_PLUGINS)
    assert "install the dicom extra" in str(info.value)
    assert "JPGLosslessP14SV1_1s_1f_8b.dcm" in str(info.value)
    image = load_dicom_image(path, plugins=("pylibjpeg",))
    assert np.asarray(image).std() > 1.0


def test_jpeg_ls_made_with_pyjpegls_decodes(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "dicom" / "us" / "US1_UNCR.dcm"
    ds = pydicom.dcmread(source)
    ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
    target = tmp_path / "jpegls.dcm"
    ds.save_as(target)
    assert pydicom.dcmread(target).file_meta.TransferSyntaxUID == JPEGLSLossless
    for plugin in ("pyjpegls", "pylibjpeg"):
        decoded = np.asarray(load_dicom_image(target, plugins=(plugin,)))
        assert np.array_equal(decoded, np.asarray(load_dicom_image(source)))


def test_windowing_and_monochrome1(shared_data: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(shared_data / "dicom" / "ct_mr" / "CT_small.dcm")
    plain = np.asarray(load_dicom_image(shared_data / "dicom" / "ct_mr" / "CT_small.dcm"))[..., 0]
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    ds.WindowCenter, ds.WindowWidth = 40, 80
    ds.save_as(tmp_path / "windowed.dcm")
    windowed = np.asarray(load_dicom_image(tmp_path / "windowed.dcm"))[..., 0]
    assert (windowed[hu <= 0] == 0).all() and (windowed[hu > 80] == 255).all()
    assert not np.array_equal(plain, windowed)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "inverted.dcm")
    inverted = np.asarray(load_dicom_image(tmp_path / "inverted.dcm"))[..., 0]
    assert np.array_equal(inverted, 255 - windowed)


def _bad_inputs(us_file: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    data = us_file.read_bytes()
    made: dict[str, tuple[Path, str]] = {}
    (folder / "truncated.dcm").write_bytes(data[: len(data) // 2])
    made["truncated"] = (folder / "truncated.dcm", "cannot decode")
    (folder / "random.dcm").write_bytes(np.random.default_rng(0).bytes(4096))
    made["random"] = (folder / "random.dcm", "not a DICOM file")
    (folder / "empty.dcm").write_bytes(b"")
    made["empty"] = (folder / "empty.dcm", "empty file")
    Image.new("RGB", (16, 16), "red").save(folder / "picture.png")
    shutil.move(folder / "picture.png", folder / "picture.dcm")
    made["png"] = (folder / "picture.dcm", "not a DICOM file")
    ds = pydicom.dcmread(us_file)
    del ds.PixelData
    ds.save_as(folder / "nopixels.dcm")
    made["nopixels"] = (folder / "nopixels.dcm", "no pixel data")
    ds = pydicom.dcmread(us_file)  # an MPEG-2 video object: pydicom has no pixel decoder for it
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([ds.PixelData])
    ds.save_as(folder / "mpeg2.dcm")
    made["mpeg2"] = (folder / "mpeg2.dcm", "unsupported transfer syntax MPEG2 Main Profile")
    ds = pydicom.dcmread(us_file)
    del ds.file_meta.TransferSyntaxUID
    ds.save_as(folder / "nosyntax.dcm")
    made["nosyntax"] = (folder / "nosyntax.dcm", "no transfer syntax")
    return made


@pytest.mark.parametrize("kind", ["truncated", "random", "empty", "png", "nopixels", "mpeg2", "nosyntax"])
def test_bad_inputs_raise_a_clear_error(shared_data: Path, tmp_path: Path, kind: str) -> None:
    path, reason = _bad_inputs(shared_data / "dicom" / "us" / "US1_UNCR.dcm", tmp_path)[kind]
    with pytest.raises(DicomReadError) as info:
        load_dicom_image(path)
    assert str(info.value).startswith(path.name + ": ")
    assert reason in info.value.reason


def test_frame_out_of_range_names_the_count(shared_data: Path) -> None:
    with pytest.raises(DicomReadError, match="has 2 frames"):
        load_dicom_image(shared_data / "dicom" / "us" / "OBXXXX1A_2frame.dcm", frame=2)
