"""Scan-region crop on real ultrasound: BUSI images and DICOM US frames, padded with known margins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.pixels import apply_color_lut

from fusion.pixels import to_rgb
from fusion.ultrasound import (
    ScanBox,
    crop_scan_region,
    draw_scan_box,
    find_scan_region,
    prepare_ultrasound,
)

TOLERANCE = 2


def _read_us_frame(path: Path, frame: int = 0) -> np.ndarray:
    """A DICOM US frame as RGB uint8, read with pydicom directly (palette LUT applied)."""
    dataset = pydicom.dcmread(path)
    pixels = dataset.pixel_array
    if int(dataset.get("NumberOfFrames", 1)) > 1:
        pixels = pixels[frame]
    if dataset.PhotometricInterpretation == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, dataset)
    return np.asarray(to_rgb(pixels))


def _pad_with_margins_and_text(
    content: np.ndarray, left: int, top: int, right: int, bottom: int, seed: int = 0
) -> np.ndarray:
    """Black canvas with faint noise, the content at (left, top), and burned-in text bands
    in the top and bottom margins, kept ``top // 3`` px clear of the content."""
    height, width = content.shape[:2]
    rng = np.random.default_rng(seed)
    canvas = rng.integers(0, 7, (height + top + bottom, width + left + right, 3), dtype=np.uint8)
    canvas[top : top + height, left : left + width] = content
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, top // 3))
    draw.text((4, 2), "L12-5  3.5cm  MI 0.8  TIS 0.4  2026-11-29 09:41", fill=(235, 235, 235), font=font)
    draw.text(
        (left + 10, top + height + bottom // 3), "BREAST  L  10:00  ID 48213", fill=(255, 255, 0), font=font
    )
    return np.asarray(image)


def _assert_close(found: ScanBox, truth: ScanBox) -> None:
    differences = np.abs(np.subtract(found.as_tuple(), truth.as_tuple()))
    assert differences.max() <= TOLERANCE, f"found {found}, truth {truth}"


def _busi_images(shared_data: Path, count: int) -> list[Path]:
    """BUSI images whose own edges hold tissue (a black edge row is indistinguishable from margin)."""
    chosen = []
    for path in sorted((shared_data / "busi" / "images").glob("*/*.png")):
        gray = np.asarray(Image.open(path).convert("L"))
        if min(gray[0].max(), gray[-1].max(), gray[:, 0].max(), gray[:, -1].max()) > 40:
            chosen.append(path)
        if len(chosen) == count:
            break
    return chosen


@pytest.mark.parametrize(
    ("left", "top", "right", "bottom"), [(30, 54, 45, 40), (0, 36, 70, 60), (64, 45, 0, 33)]
)
def test_busi_padded_box_within_2px(shared_data: Path, left: int, top: int, right: int, bottom: int) -> None:
    paths = _busi_images(shared_data, 4)
    assert len(paths) == 4
    for index, path in enumerate(paths):
        content = np.asarray(Image.open(path).convert("RGB"))
        padded = _pad_with_margins_and_text(content, left, top, right, bottom, seed=index)
        truth = ScanBox(left, top, left + content.shape[1], top + content.shape[0])
        _assert_close(find_scan_region(padded), truth)


def test_busi_grayscale_16bit_input(shared_data: Path) -> None:
    path = _busi_images(shared_data, 1)[0]
    content = np.asarray(Image.open(path).convert("L")).astype(np.uint16) * 257
    padded = np.zeros((content.shape[0] + 70, content.shape[1] + 50), dtype=np.uint16)
    padded[40 : 40 + content.shape[0], 20 : 20 + content.shape[1]] = content
    crop, box = crop_scan_region(padded)
    _assert_close(box, ScanBox(20, 40, 20 + content.shape[1], 40 + content.shape[0]))
    assert crop.mode == "RGB" and crop.size == (box.width, box.height)


def test_us1_uncr_excludes_header_text_and_label(shared_data: Path) -> None:
    """Rows 108-336 are the B-mode rectangle (every row there is >90% lit, rows 102-107 and
    337-344 are empty); the header text above and 'LYMPH NODE' below must stay outside."""
    frame = _read_us_frame(shared_data / "dicom" / "us" / "US1_UNCR.dcm")
    box = find_scan_region(frame)
    assert abs(box.y0 - 108) <= TOLERANCE and abs(box.y1 - 337) <= TOLERANCE
    assert box.width > 0.9 * frame.shape[1]


@pytest.mark.parametrize(
    ("file_name", "frame"),
    [
        ("US1_UNCR.dcm", 0),
        ("examples_rgb_color.dcm", 0),
        ("examples_ybr_color.dcm", 0),
        ("OBXXXX1A_2frame.dcm", 1),
        ("gdcm-US-ALOKA-16.dcm", 0),
    ],
)
def test_real_dicom_frames_padded_box_shifts_with_padding(
    shared_data: Path, file_name: str, frame: int
) -> None:
    """Extra black margins and a text band around a real frame move its box by the padding only
    (same ``text_size`` both times: by default it scales with the frame, which padding changes)."""
    content = _read_us_frame(shared_data / "dicom" / "us" / file_name, frame)
    own = find_scan_region(content, text_size=10)
    assert own.width >= content.shape[1] // 4 and own.height >= content.shape[0] // 4
    left, top = 37, 48
    padded = _pad_with_margins_and_text(content, left, top, 25, 42, seed=7)
    shifted = ScanBox(own.x0 + left, own.y0 + top, own.x1 + left, own.y1 + top)
    _assert_close(find_scan_region(padded, text_size=10), shifted)


def test_all_black_frame_returns_whole_frame() -> None:
    assert find_scan_region(np.zeros((40, 60), dtype=np.uint8)) == ScanBox(0, 0, 60, 40)


def test_prepare_ultrasound_crops_and_denoise_keeps_size(shared_data: Path) -> None:
    path = _busi_images(shared_data, 1)[0]
    content = np.asarray(Image.open(path).convert("RGB"))
    padded = _pad_with_margins_and_text(content, 20, 40, 20, 30)
    plain, box = prepare_ultrasound(padded)
    denoised, same_box = prepare_ultrasound(padded, denoise=True)
    assert box == same_box and plain.size == denoised.size == (box.width, box.height)
    difference = np.abs(np.asarray(plain, dtype=float) - np.asarray(denoised, dtype=float))
    assert 0 < difference.mean() < 20
    outlined = draw_scan_box(padded, box)
    assert np.asarray(outlined)[box.y0, box.x0 + 5].tolist() == [0, 255, 102]
