"""``ultra.media``: every input kind read to RGB, and every bad input a one-line MediaError.

Images are checked pixel for pixel against arrays built here (lossless formats exactly, JPEG and
MJPG within a stated mean error); DICOM against pydicom's own pixel array; sizes against limits
before any decoding (the pixel data of an oversized image is left corrupt, so a decode would fail
with a different reason).
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid

from data_zh.schema import DicomFrameRef, Media, Record, Turn, VideoRef
from ultra.media import (
    DicomReadError,
    MediaError,
    MediaLimits,
    read_image,
    read_record_media,
    read_video,
)

CLIP_SIZE = (140, 112)  # laparoscopy frames (1400x1120) downscaled 10x
US_RGB = "dicom/us/US1_UNCR.dcm"  # uncompressed RGB ultrasound


def _gray() -> np.ndarray:
    """48x64 horizontal ramp holding both 0 and 255 (so min-max scaling is the identity)."""
    return np.broadcast_to(np.rint(np.arange(64) * 255 / 63).astype(np.uint8), (48, 64)).copy()


def _rgb() -> np.ndarray:
    gray = _gray()
    return np.stack([gray, gray[:, ::-1], gray // 2 + 64], axis=2)


def _as_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def assert_pixels(actual: Image.Image, expected: np.ndarray, mean_tolerance: float = 0.0) -> None:
    """Exact for lossless inputs; lossy ones within a mean absolute error; the message shows the gap."""
    assert actual.mode == "RGB", actual.mode
    got = np.asarray(actual, dtype=np.int16)
    assert got.shape == expected.shape, f"shape {got.shape} != {expected.shape}"
    diff = np.abs(got - expected.astype(np.int16))
    if mean_tolerance == 0.0:
        assert diff.max() == 0, (
            f"largest difference {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}"
        )
    else:
        assert diff.mean() <= mean_tolerance, f"mean difference {diff.mean():.2f} (largest {diff.max()})"


def write_multiframe_dicom(path: Path, frames: np.ndarray, **header: int) -> Path:
    """A real DICOM Part 10 file (MONOCHROME2, 8 bit) written by pydicom; ``header`` overrides tags."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.NumberOfFrames, ds.Rows, ds.Columns = frames.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = frames.astype(np.uint8).tobytes()
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def _frames() -> np.ndarray:
    """Three distinct full-range frames (each holds 0 and 255)."""
    return np.stack([np.roll(_gray(), 9 * k, axis=1) for k in range(3)])


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_header(path: Path, width: int, height: int, idat: bytes | None = None) -> Path:
    """A 1-bit grey PNG of any size written by hand: all-zero rows compress to a few kB, so a
    14000x14000 image costs nothing to make; ``idat`` replaces the pixel data (e.g. with garbage)."""
    if idat is None:
        compressor = zlib.compressobj(9)
        row = bytes(1 + (width + 7) // 8)
        idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)
    path.write_bytes(png + _png_chunk(b"IEND", b""))
    return path


# ---- every image input kind ---------------------------------------------------------------------

Case = Callable[[Path, Path], tuple[object, dict, np.ndarray, float]]


def _saved(fmt: str, suffix: str, tolerance: float = 0.0, **save: object) -> Case:
    def make(tmp: Path, _shared: Path) -> tuple[object, dict, np.ndarray, float]:
        path = tmp / f"image{suffix}"
        Image.fromarray(_rgb()).save(path, format=fmt, **save)
        return path, {}, _rgb(), tolerance

    return make


def _dicom_expected(shared: Path) -> np.ndarray:
    ds = pydicom.dcmread(shared / US_RGB)
    assert ds.PhotometricInterpretation == "RGB", ds.PhotometricInterpretation
    return ds.pixel_array


def _dicom_suffix(tmp: Path, shared: Path):
    return shared / US_RGB, {}, _dicom_expected(shared), 0.0


def _dicom_no_suffix(tmp: Path, shared: Path):
    target = tmp / "IM000123"  # PACS exports often have no suffix: found by the DICM magic
    shutil.copy(shared / US_RGB, target)
    return target, {}, _dicom_expected(shared), 0.0


def _dicom_frame(tmp: Path, _shared: Path):
    path = write_multiframe_dicom(tmp / "cine.dcm", _frames())
    return path, {"frame": 2}, _as_rgb(_frames()[2]), 0.0


def _dicom_bytes(tmp: Path, shared: Path):
    return (shared / US_RGB).read_bytes(), {}, _dicom_expected(shared), 0.0


def _png_as_bytes(tmp: Path, _shared: Path):
    return _png_bytes(_rgb()), {}, _rgb(), 0.0


def _data_url(tmp: Path, _shared: Path):
    url = "data:image/png;base64," + base64.b64encode(_png_bytes(_rgb())).decode()
    return url, {}, _rgb(), 0.0


def _tiff_page(tmp: Path, _shared: Path):
    path = tmp / "pages.tiff"
    pages = [Image.fromarray(_rgb()), Image.fromarray(_rgb()[::-1].copy())]
    pages[0].save(path, save_all=True, append_images=pages[1:])
    return path, {"frame": 1}, _rgb()[::-1], 0.0


CASES: dict[str, Case] = {
    "png": _saved("PNG", ".png"),
    "jpeg": _saved("JPEG", ".jpg", 2.0, quality=95),
    "bmp": _saved("BMP", ".bmp"),
    "tiff": _saved("TIFF", ".tif"),
    "tiff page 1": _tiff_page,
    "dicom by suffix": _dicom_suffix,
    "dicom without suffix": _dicom_no_suffix,
    "dicom frame 2 of 3": _dicom_frame,
    "dicom bytes": _dicom_bytes,
    "png bytes": _png_as_bytes,
    "data url": _data_url,
    "path as str": lambda tmp, shared: (str(_saved("PNG", ".png")(tmp, shared)[0]), {}, _rgb(), 0.0),
    "numpy uint8 rgb": lambda tmp, shared: (_rgb(), {}, _rgb(), 0.0),
    "numpy uint8 rgba": lambda tmp, shared: (
        np.dstack([_rgb(), np.full((48, 64), 7, np.uint8)]),
        {},
        _rgb(),
        0.0,
    ),
    "numpy uint8 gray": lambda tmp, shared: (_gray(), {}, _as_rgb(_gray()), 0.0),
    "numpy uint16 gray": lambda tmp, shared: (_gray().astype(np.uint16) * 257, {}, _as_rgb(_gray()), 0.0),
    "numpy float [0,1]": lambda tmp, shared: (_rgb().astype(np.float32) / 255, {}, _rgb(), 0.0),
    "numpy float hounsfield": lambda tmp, shared: (_gray() * 8.0 - 1000.0, {}, _as_rgb(_gray()), 0.0),
    "pil rgb": lambda tmp, shared: (Image.fromarray(_rgb()), {}, _rgb(), 0.0),
    "pil gray": lambda tmp, shared: (Image.fromarray(_gray()), {}, _as_rgb(_gray()), 0.0),
    "pil 16-bit": lambda tmp, shared: (
        Image.fromarray(_gray().astype(np.uint16) * 257),
        {},
        _as_rgb(_gray()),
        0.0,
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_every_image_input_reads_to_rgb(kind: str, tmp_path: Path, shared_data: Path) -> None:
    source, kwargs, expected, tolerance = CASES[kind](tmp_path, shared_data)
    assert_pixels(read_image(source, **kwargs), expected, tolerance)


def test_multiframe_dicom_frames_differ(shared_data: Path) -> None:
    path = shared_data / "dicom" / "us" / "OBXXXX1A_2frame.dcm"
    first, second = read_image(path, frame=0), read_image(path, frame=1)
    assert first.size == second.size == (pydicom.dcmread(path).Columns, pydicom.dcmread(path).Rows)
    assert not np.array_equal(np.asarray(first), np.asarray(second))


def test_ultra_dicom_reexports_the_media_reader() -> None:
    import ultra.dicom

    assert ultra.dicom.load_dicom_image is __import__("ultra.media").media.load_dicom_image
    assert ultra.dicom.DicomReadError is DicomReadError and issubclass(DicomReadError, MediaError)


# ---- videos -------------------------------------------------------------------------------------


def _laparoscopy(shared: Path, count: int) -> list[np.ndarray]:
    folder = shared / "laparoscopy_frames" / "test" / "images"
    paths = sorted(folder.glob("*.jpg"), key=lambda p: int(re.search(r"mp4-(\d+)_jpg", p.name).group(1)))
    if len(paths) < count:
        pytest.skip(f"{folder} holds {len(paths)} frames, {count} needed")
    return [np.asarray(Image.open(p).convert("RGB").resize(CLIP_SIZE)) for p in paths[:count]]


@pytest.fixture(scope="module")
def clip(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Six real frames as a frame folder (PNG, lossless), a frame list and an MJPG video file."""
    frames = _laparoscopy(shared_data, 6)
    root = tmp_path_factory.mktemp("clip")
    folder = root / "frames"
    folder.mkdir()
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"f{index + 1}.png")
    video = root / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, CLIP_SIZE)
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return {"frames": frames, "folder": folder, "video": video, "paths": sorted(folder.glob("*.png"))}


VIDEO_KINDS = {
    "video file": lambda c: (c["video"], 3.0),
    "frame folder": lambda c: (c["folder"], 0.0),
    "frame folder as str": lambda c: (str(c["folder"]), 0.0),
    "frame list": lambda c: (c["paths"], 0.0),
}


@pytest.mark.parametrize("kind", sorted(VIDEO_KINDS))
def test_every_video_input_reads_its_frames(kind: str, clip: dict) -> None:
    source, tolerance = VIDEO_KINDS[kind](clip)
    frames = read_video(source)
    assert len(frames) == len(clip["frames"])
    for got, expected in zip(frames, clip["frames"], strict=True):
        assert_pixels(got, expected, tolerance)
    picked = read_video(source, indices=[4, 1])
    assert_pixels(picked[0], clip["frames"][4], tolerance)
    assert_pixels(picked[1], clip["frames"][1], tolerance)


def test_video_over_the_pixel_budget_is_refused_before_decoding(clip: dict) -> None:
    width, height = CLIP_SIZE
    limits = MediaLimits(max_total_pixels=5 * width * height)
    for source, name in ((clip["video"], str(clip["video"])), (clip["folder"], str(clip["folder"]))):
        with pytest.raises(MediaError) as info:
            read_video(source, limits=limits)
        assert str(info.value).startswith(f"{name}: video of 6 frames x {width}x{height}")
        assert len(read_video(source, indices=[0, 1, 2, 3, 4], limits=limits)) == 5


def test_video_errors_name_the_source(clip: dict, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(MediaError, match=r"^clip-3: .*OpenCV cannot open"):
        read_video(broken, source_id="clip-3")
    with pytest.raises(MediaError, match=r"missing: no such video file or frame folder"):
        read_video(tmp_path / "missing")
    with pytest.raises(MediaError, match=r"out of range \(0\.\.5\)"):
        read_video(clip["folder"], indices=[6])
    bad = [*clip["paths"][:2], tmp_path / "gone.png"]
    with pytest.raises(MediaError) as info:
        read_video(bad, source_id="case-9 clip")
    assert str(info.value) == "case-9 clip frame 2: file not found"


# ---- a unified-schema record --------------------------------------------------------------------


def test_record_media_in_placeholder_order(clip: dict, tmp_path: Path) -> None:
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    write_multiframe_dicom(tmp_path / "cine.dcm", _frames())
    shutil.copytree(clip["folder"], tmp_path / "clip")
    record = Record(
        id="r1",
        source="toy",
        licence="CC0",
        specialty="surgery",
        modality="US",
        language="zh",
        task="open_vqa",
        media=Media(
            root=str(tmp_path),
            images=["a.png"],
            dicom=[DicomFrameRef(path="cine.dcm", frame=1)],
            video=VideoRef(path="clip", frame_indices=[5, 0]),
        ),
        conversations=[
            Turn(role="user", content="<video>\n<image>\n<image>\n描述"),
            Turn(role="assistant", content="好"),
        ],
    )
    media = read_record_media(record)
    assert len(media.images) == 2
    assert_pixels(media.images[0], _rgb())
    assert_pixels(media.images[1], _as_rgb(_frames()[1]))
    assert media.video_frames is not None and len(media.video_frames) == 2
    assert_pixels(media.video_frames[0], clip["frames"][5])
    assert_pixels(media.video_frames[1], clip["frames"][0])
    moved = read_record_media(
        record.model_copy(update={"media": record.media.model_copy(update={"root": None})}), tmp_path
    )
    assert_pixels(moved.images[0], _rgb())


# ---- bad inputs: one line, naming the source ----------------------------------------------------


def test_decompression_bomb_png_is_refused_without_decoding(tmp_path: Path) -> None:
    bomb = write_png_header(tmp_path / "bomb.png", 14000, 14000)
    assert bomb.stat().st_size < 100_000
    started = time.perf_counter()
    with pytest.raises(MediaError) as info:
        read_image(bomb)
    assert time.perf_counter() - started < 2.0  # a decode of 196 Mpx would take seconds and ~800 MB
    message = str(info.value)
    assert message.startswith(f"{bomb}: ") and "\n" not in message and "too large" in message


def test_ultra_ask_reports_a_bomb_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ultra.cli.main import app

    bomb = write_png_header(tmp_path / "bomb.png", 14000, 14000)
    result = CliRunner().invoke(app, ["ask", "-q", "是否可见病灶？", "--image", str(bomb)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"error: {bomb}: image too large to decode safely" in " ".join(result.output.split())


def test_size_limit_is_checked_from_the_header_before_decoding(tmp_path: Path) -> None:
    """The pixel data is garbage: only a reader that stops at the header gives the size reason."""
    path = write_png_header(tmp_path / "big.png", 3000, 2000, idat=b"garbage, not zlib")
    limits = MediaLimits(max_pixels=1_000_000)
    with pytest.raises(MediaError) as info:
        read_image(path, limits=limits)
    assert str(info.value) == (
        f"{path}: image of 3000x2000 = 6,000,000 pixels exceeds the limit of 1,000,000 pixels (not decoded)"
    )
    with pytest.raises(MediaError, match="not a readable image"):
        read_image(path)  # under the default limit it is decoded, and the garbage shows


def test_dicom_header_claiming_huge_frames_is_refused(tmp_path: Path) -> None:
    """Rows x columns x frames come from the header; the (small) pixel data is never decoded."""
    cine = write_multiframe_dicom(
        tmp_path / "cine.dcm", _frames(), Rows=4000, Columns=4000, NumberOfFrames=2000
    )
    with pytest.raises(DicomReadError) as info:
        read_image(cine)
    assert str(info.value) == (
        f"{cine}: DICOM pixel data of 2000 frames x 4000x4000 = 32,000,000,000 pixels exceeds the limit "
        "of 1,000,000,000 pixels (not decoded)"
    )
    assert isinstance(info.value, MediaError)
    frame = write_multiframe_dicom(tmp_path / "frame.dcm", _frames(), Rows=30000, Columns=30000)
    with pytest.raises(MediaError, match=r"image of 30000x30000 = 900,000,000 pixels exceeds the limit"):
        read_image(frame)
    small = write_multiframe_dicom(tmp_path / "small.dcm", _frames())
    with pytest.raises(MediaError, match="DICOM pixel data of 3 frames x 64x48"):
        read_image(small, limits=MediaLimits(max_total_pixels=2 * 64 * 48))


def _corrupt_png(tmp: Path) -> tuple[object, str]:
    path = tmp / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return path, "not a readable image"


def _truncated_png(tmp: Path) -> tuple[object, str]:
    path = tmp / "truncated.png"
    path.write_bytes(_png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))[:300])
    return path, "not a readable image"


BAD_INPUTS: dict[str, Callable[[Path], tuple[object, str]]] = {
    "corrupt file": _corrupt_png,
    "truncated png": _truncated_png,
    "text file": lambda tmp: (
        (tmp / "notes.txt", (tmp / "notes.txt").write_text("hello"))[0],
        "unknown format",
    ),
    "missing file": lambda tmp: (tmp / "nope.jpg", "file not found"),
    "folder": lambda tmp: (tmp, "is a folder"),
    "corrupt dicom": lambda tmp: (
        (tmp / "x.dcm", (tmp / "x.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x01" * 20))[0],
        "no pixel data",
    ),
    "http url": lambda tmp: ("https://example.org/scan.png?token=abc", "URLs are not fetched"),
    "data url not base64": lambda tmp: ("data:image/png,rawbytes", "not base64-encoded"),
    "data url bad base64": lambda tmp: ("data:image/png;base64,@@@@", "invalid base64"),
    "empty bytes": lambda tmp: (b"", "empty data"),
    "random bytes": lambda tmp: (np.random.default_rng(1).bytes(500), "not a readable image"),
    "array of 4 dims": lambda tmp: (np.zeros((2, 3, 4, 5), np.uint8), "is not HxW"),
    "array with nan": lambda tmp: (np.full((4, 4), np.nan), "NaN"),
    "unsupported type": lambda tmp: (42, "unsupported input type int"),
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_inputs_are_one_line_media_errors(kind: str, tmp_path: Path) -> None:
    source, reason = BAD_INPUTS[kind](tmp_path)
    with pytest.raises(MediaError) as info:
        read_image(source)
    message = str(info.value)
    assert "\n" not in message and reason in message, message
    if isinstance(source, Path):
        assert message.startswith(f"{source}: ")
    if kind == "http url":
        assert "token" not in message  # the query string of a URL is not echoed


def test_caller_source_id_replaces_the_path(tmp_path: Path, shared_data: Path) -> None:
    private = tmp_path / "张三_1961-02-03"
    private.mkdir()
    bad_png, _ = _corrupt_png(private)
    bad_dicom = private / "scan.dcm"
    bad_dicom.write_bytes(b"\x00" * 300)
    cases = [
        (bad_png, {}),
        (bad_dicom, {}),
        (private / "gone.png", {}),
        (shutil.copy(shared_data / US_RGB, private / "us.dcm"), {"frame": 3}),
    ]
    for path, kwargs in cases:
        with pytest.raises(MediaError) as info:
            read_image(path, source_id="study-42/image-1", **kwargs)
        message = str(info.value)
        assert (
            message.startswith("study-42/image-1: ") and "张三" not in message and str(private) not in message
        )


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_pixels must be positive"):
        MediaLimits(max_pixels=0)
    with pytest.raises(MediaError, match="exceed the limit of 10 bytes"):
        read_image(
            "data:image/png;base64," + base64.b64encode(_png_bytes(_rgb())).decode(),
            limits=MediaLimits(max_bytes=10),
        )


# ---- budgets: images shrunk as they are read, decoded bytes counted -----------------------------


def _gradient(width: int, height: int) -> np.ndarray:
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    planes = [np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1))]
    return np.concatenate([*planes, np.full((height, width, 1), 90.0)], axis=2).astype(np.uint8)


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "I;16", "1", "CMYK"])
def test_max_side_shrinks_every_mode_like_shrinking_the_full_image(mode: str) -> None:
    rgb = Image.fromarray(_gradient(1200, 800))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 200)
    else:
        image = rgb.convert(mode)
    data = _encoded(image, "TIFF" if mode == "CMYK" else "PNG")
    small = read_image(data, max_side=300)
    assert small.mode == "RGB" and small.size == (300, 200)
    expected = read_image(data).resize((300, 200), Image.Resampling.BOX)
    error = np.abs(np.asarray(small, dtype=float) - np.asarray(expected, dtype=float)).mean()
    assert error < (40 if mode == "1" else 3), error  # the gradient is smooth; 1-bit dithers


def test_small_images_are_read_exactly_as_without_max_side() -> None:
    data = _encoded(Image.fromarray(_gradient(120, 80)), "PNG")
    assert np.array_equal(np.asarray(read_image(data, max_side=120)), np.asarray(read_image(data)))


def test_png_peak_is_one_full_image_and_only_the_small_copy_is_kept() -> None:
    from ultra.media import DecodeAccount

    width, height = 2000, 1500
    data = _encoded(Image.fromarray(_gradient(width, height)), "PNG")
    account = DecodeAccount(1 << 30)
    small = read_image(data, max_side=400, account=account)
    assert account.peak == width * height * 4 + width * height  # RGB (4 bytes a pixel) + one band
    assert account.held == small.width * small.height * 4
    account.close()
    assert account.held == 0


def test_jpeg_decodes_at_a_reduced_scale() -> None:
    from ultra.media import DecodeAccount

    width, height = 4000, 3000
    data = _encoded(Image.fromarray(_gradient(width, height)), "JPEG", quality=90)
    account = DecodeAccount(1 << 30)
    small = read_image(data, max_side=500, account=account)
    assert small.size == (500, 375)
    assert account.peak <= width * height * 4 // 16 * 1.25  # draft mode decoded at 1/4 scale at most
    full = read_image(data).resize(small.size, Image.Resampling.BOX)
    assert np.abs(np.asarray(small, dtype=float) - np.asarray(full, dtype=float)).mean() < 3


def test_exif_orientation_survives_shrinking() -> None:
    image = Image.fromarray(_gradient(900, 300))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    data = _encoded(image, "JPEG", exif=exif.tobytes(), quality=95)
    assert read_image(data).size == (300, 900)
    assert read_image(data, max_side=150).size == (50, 150)


def test_request_and_server_budgets_refuse_and_give_everything_back() -> None:
    from ultra.media import DecodeBudget, DecodeBudgetError

    data = _encoded(Image.fromarray(_gradient(1000, 1000)), "PNG")  # 4 MB + 1 MB band while decoding
    server = DecodeBudget(12 << 20)
    with server.account(8 << 20) as first:
        read_image(data, max_side=100, account=first)
        read_image(data, max_side=100, account=first)  # one at a time: the peak does not add up
        assert first.peak < 6 << 20 and server.held == first.held == 2 * 100 * 100 * 4
        with server.account(4 << 20) as small, pytest.raises(DecodeBudgetError) as own:
            read_image(data, max_side=100, account=small, source_id="image 1")
        assert not own.value.shared and str(own.value).startswith("image 1: decoding it needs 5 MB")
        other = server.account(8 << 20)
        held = server.account(8 << 20)
        held.hold("other", 8 << 20)
        with pytest.raises(DecodeBudgetError) as busy:
            read_image(data, max_side=100, account=other)
        assert busy.value.shared and other.held == 0
        held.close()
    assert server.held == 0
