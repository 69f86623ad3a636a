"""The one pixel policy (``fusion.pixels``): every input kind to the same RGB through every door.

Each case is built here with the pixels it must give, computed without the policy: a ramp holding
every value 0..255 once, so a min-max stretch of any affine copy of it gives the ramp back exactly.
Every door (``fusion.to_rgb``, ``screening.as_rgb_image``, ``ultra.media.read_image``; for files
also ``fusion.read_image_file`` and ``ultra.media.read_video``) must give those pixels.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fusion
import screening
from fusion.crop_files import crop_image_files
from fusion.pixels import PixelError, read_image_file, rgb_array, to_rgb, video_frame_to_rgb
from ultra.media import MediaError, read_image, read_video

ROOT = Path(__file__).resolve().parents[1]
RAMP = np.arange(256, dtype=np.uint8).reshape(16, 16)
RGB = np.stack([RAMP, RAMP[::-1], RAMP.T], axis=2)
MASK = RAMP % 3 == 0
PALETTE = np.array([[17 * i, 255 - 17 * i, (40 * i) % 256] for i in range(16)], dtype=np.uint8)


def _grey(array: np.ndarray) -> np.ndarray:
    return np.repeat(array[..., None], 3, axis=2)


def _palette_image() -> Image.Image:
    image = Image.fromarray(RAMP % 16, mode="L").convert("P")
    image.putpalette(PALETTE.tobytes())
    image.info["transparency"] = 0  # transparency is dropped like alpha, never painted over
    return image


def _exif_rotated(path: Path) -> Path:
    """A PNG stored sideways whose EXIF orientation 6 says: turn 90° clockwise to show it."""
    image = Image.fromarray(np.ascontiguousarray(np.rot90(RGB[:, :12], k=1)))
    exif = image.getexif()
    exif[274] = 6
    image.save(path, exif=exif)
    return path


# name -> (input, the RGB it must become, largest channel error allowed)
IN_MEMORY: dict[str, Callable[[], tuple[object, np.ndarray, int]]] = {
    "uint8 HxW": lambda: (RAMP, _grey(RAMP), 0),
    "uint8 HxWx1": lambda: (RAMP[..., None], _grey(RAMP), 0),
    "uint8 HxWx3": lambda: (RGB, RGB, 0),
    "uint8 HxWx4 (alpha dropped)": lambda: (np.dstack([RGB, RAMP[::-1]]), RGB, 0),
    "uint16 (stretched min to max)": lambda: ((1000 + 7 * RAMP.astype(np.uint16)), _grey(RAMP), 0),
    "int16 signed (stretched)": lambda: ((-500 + 3 * RAMP.astype(np.int16)), _grey(RAMP), 0),
    "uint16 flat (maps to 0)": lambda: (np.full((4, 5), 4095, np.uint16), np.zeros((4, 5, 3), np.uint8), 0),
    "float in [0, 1] (times 255)": lambda: (RAMP / 255.0, _grey(RAMP), 0),
    "float in [0, 1] not spanning it": lambda: (np.full((3, 3), 0.5), np.full((3, 3, 3), 128, np.uint8), 0),
    "float outside [0, 1] (stretched)": lambda: (RAMP * 2.0 - 10.0, _grey(RAMP), 0),
    "float RGBA, alpha out of range (dropped before scaling)": lambda: (
        np.dstack([RGB / 255.0, np.full(RAMP.shape, 5.0)]).astype(np.float32),
        RGB,
        0,
    ),
    "bool mask (0/255)": lambda: (MASK, _grey(MASK.astype(np.uint8) * 255), 0),
    "PIL L": lambda: (Image.fromarray(RAMP), _grey(RAMP), 0),
    "PIL I;16 (stretched, not clipped)": lambda: (
        Image.fromarray(1000 + 7 * RAMP.astype(np.uint16)),
        _grey(RAMP),
        0,
    ),
    "PIL I 32-bit (stretched)": lambda: (Image.fromarray(-70_000 + 9 * RAMP.astype(np.int32)), _grey(RAMP), 0),
    "PIL F (float rule)": lambda: (Image.fromarray((RAMP / 255.0).astype(np.float32)), _grey(RAMP), 0),
    "PIL RGB": lambda: (Image.fromarray(RGB), RGB, 0),
    "PIL RGBA (alpha dropped)": lambda: (Image.fromarray(np.dstack([RGB, RAMP])), RGB, 0),
    "PIL LA (alpha dropped)": lambda: (Image.fromarray(RAMP).convert("LA"), _grey(RAMP), 0),
    "PIL P with transparency (palette colours)": lambda: (_palette_image(), PALETTE[RAMP % 16], 0),
    "PIL 1 bilevel (0/255)": lambda: (Image.fromarray(MASK), _grey(MASK.astype(np.uint8) * 255), 0),
    "PIL CMYK": lambda: (Image.fromarray(RGB).convert("CMYK"), RGB, 0),
    "PIL YCbCr (converted, not read as RGB)": lambda: (Image.fromarray(RGB).convert("YCbCr"), RGB, 3),
}


def _check(image: Image.Image, expected: np.ndarray, tolerance: int) -> None:
    assert image.mode == "RGB", image.mode
    got = np.asarray(image, dtype=np.int16)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    gap = int(np.abs(got - expected.astype(np.int16)).max())
    assert gap <= tolerance, f"largest channel error {gap} > {tolerance}"


@pytest.mark.parametrize("kind", sorted(IN_MEMORY))
def test_every_in_memory_kind_reads_alike_through_every_door(kind: str) -> None:
    source, expected, tolerance = IN_MEMORY[kind]()
    before = np.asarray(source).copy()
    doors = {
        "fusion.to_rgb": lambda: to_rgb(source, "x"),
        "fusion.rgb_array": lambda: Image.fromarray(rgb_array(source, "x")),
        "screening.as_rgb_image": lambda: screening.as_rgb_image(source),
        "ultra.media.read_image": lambda: read_image(source),
    }
    for door, read in doors.items():
        image = read()
        try:
            _check(image, expected, tolerance)
        except AssertionError as error:
            raise AssertionError(f"{door}: {error}") from None
    assert np.array_equal(np.asarray(source), before), "the input was changed in place"


def _write(array: np.ndarray, name: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        Image.fromarray(array).save(folder / name)
        return folder / name

    return make


FILES: dict[str, tuple[Callable[[Path], Path], np.ndarray]] = {
    "8-bit grey PNG": (_write(RAMP, "grey.png"), _grey(RAMP)),
    "RGB PNG": (_write(RGB, "rgb.png"), RGB),
    "RGBA PNG": (_write(np.dstack([RGB, RAMP]), "rgba.png"), RGB),
    "16-bit PNG (stretched)": (_write(1000 + 7 * RAMP.astype(np.uint16), "wide.png"), _grey(RAMP)),
    "palette PNG": (lambda folder: (_palette_image().save(folder / "p.png"), folder / "p.png")[1], PALETTE[RAMP % 16]),
    "BMP": (_write(RGB, "rgb.bmp"), RGB),
    "TIFF": (_write(RGB, "rgb.tif"), RGB),
    "EXIF orientation 6 (turned upright)": (lambda folder: _exif_rotated(folder / "sideways.png"), RGB[:, :12]),
}


@pytest.mark.parametrize("kind", sorted(FILES))
def test_every_file_kind_reads_alike_through_every_door(kind: str, tmp_path: Path) -> None:
    make, expected = FILES[kind]
    path = make(tmp_path)
    (tmp_path / "clip").mkdir()
    path.rename(tmp_path / "clip" / path.name)
    path = tmp_path / "clip" / path.name
    doors = {
        "fusion.read_image_file": lambda: read_image_file(path),
        "ultra.media.read_image": lambda: read_image(path),
        "ultra.media.read_video (frame list)": lambda: read_video([path])[0],
        "ultra.media.read_video (folder)": lambda: read_video(path.parent)[0],
    }
    for door, read in doors.items():
        try:
            _check(read(), expected, 0)
        except AssertionError as error:
            raise AssertionError(f"{door}: {error}") from None


def test_the_cropper_reads_files_by_the_policy() -> None:
    assert inspect.signature(crop_image_files).parameters["loader"].default is read_image_file


def _corrupt(folder: Path) -> Path:
    path = folder / "scan.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return path


def _truncated(folder: Path) -> Path:
    path = _write(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), "cut.png")(folder)
    path.write_bytes(path.read_bytes()[:400])
    return path


def _text(folder: Path) -> Path:
    path = folder / "notes.jpg"
    path.write_text("患者 张三\n", encoding="utf-8")
    return path


def _folder(folder: Path) -> Path:
    (folder / "frames").mkdir()
    return folder / "frames"


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "corrupt PNG": (_corrupt, "not a readable image"),
    "truncated PNG": (_truncated, "not a readable image"),
    "text named .jpg": (_text, "not a readable image (unknown format)"),
    "missing file": (lambda folder: folder / "gone.png", "file not found"),
    "a folder": (_folder, "is a folder, not an image"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_files_are_one_line_errors_naming_the_file(kind: str, tmp_path: Path) -> None:
    make, reason = BAD_FILES[kind]
    path = make(tmp_path)
    with pytest.raises(PixelError) as policy:
        read_image_file(path)
    message = str(policy.value)
    assert message.startswith(f"{path}: {reason}"), message
    assert "\n" not in message and policy.value.source_id == str(path)
    with pytest.raises(PixelError, match=rf"^scan 7: {re.escape(reason)}"):
        read_image_file(path, source_id="scan 7")
    with pytest.raises(MediaError) as media:  # the front door words it the same way
        read_image(path)
    assert str(media.value).startswith(f"{path}: {reason}"), str(media.value)


BAD_ARRAYS: dict[str, tuple[object, str]] = {
    "4-D array": (np.zeros((2, 3, 4, 5), np.uint8), "array of shape (2, 3, 4, 5) is not HxW, HxWx1, HxWx3 or HxWx4"),
    "two channels": (np.zeros((4, 4, 2), np.uint8), "array of shape (4, 4, 2) is not HxW"),
    "NaN": (np.full((4, 4), np.nan), "array holds NaN or infinite values"),
    "infinity": (np.full((4, 4), np.inf, np.float32), "array holds NaN or infinite values"),
    "empty": (np.zeros((0, 4), np.uint16), "empty array of shape (0, 4)"),
    "complex": (np.zeros((4, 4), np.complex64), "array of dtype complex64 is not numeric"),
    "strings": (np.full((4, 4), "a"), "array of dtype <U1 is not numeric"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ARRAYS))
def test_bad_arrays_are_refused_alike_by_every_door(kind: str) -> None:
    array, reason = BAD_ARRAYS[kind]
    with pytest.raises(PixelError, match=rf"^scan 2: {re.escape(reason)}"):
        to_rgb(array, "scan 2")
    with pytest.raises(ValueError, match=rf"^image 2: {re.escape(reason)}"):
        screening.as_rgb_image(array, index=2)
    with pytest.raises(MediaError, match=rf"^array: {re.escape(reason)}"):
        read_image(array)


def test_neither_an_image_nor_an_array_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="image 4: expected a PIL image or a numpy array, got str"):
        screening.as_rgb_image("scan.png", index=4)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (np.ascontiguousarray(RGB[..., ::-1]), RGB),  # OpenCV's BGR
        (np.dstack([RGB[..., ::-1], RAMP]), RGB),  # BGRA
        (RAMP, _grey(RAMP)),  # a grey frame stays upright, not mirrored
        ((1000 + 7 * RAMP.astype(np.uint16)), _grey(RAMP)),  # a 16-bit grey frame, stretched
    ],
    ids=["bgr", "bgra", "grey", "grey 16-bit"],
)
def test_video_frames_follow_the_same_rule(frame: np.ndarray, expected: np.ndarray) -> None:
    _check(video_frame_to_rgb(frame, "clip.mp4 frame 3"), expected, 0)


def test_reading_pixels_pulls_in_no_model_code() -> None:
    """The policy sits on the lowest floor; reading an image must not import torch, timm or OpenCV."""
    probe = (
        "import sys, fusion.pixels, ultra.media, data_zh.builders.report_benchmark; "
        "print(sorted(m for m in ('torch', 'timm', 'cv2', 'skimage', 'fusion.model') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"imported: {result.stdout.strip()}"


def test_every_fusion_export_resolves() -> None:
    """``fusion`` imports its names on first use; each listed name must exist where it points."""
    missing = [name for name in fusion.__all__ if not hasattr(fusion, name)]
    assert not missing, missing
    assert fusion.to_rgb is to_rgb and "to_rgb" in dir(fusion)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        fusion.no_such_name  # noqa: B018
