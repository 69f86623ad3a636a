"""Pixel de-identification keeps the image and removes the text, on the shared ultrasound files.

Each test is a row of the integrity table: outputs that were black or cut down keep their scan;
text planted inside a real scan (Latin and Chinese, small and large, with no, a full-frame or a
central ultrasound region in the header) is unreadable afterwards by RapidOCR (detection and
recognition, any confidence) in the PNG and in the written DICOM; a name on one frame of a cine
is masked on that frame. Chinese is drawn with the bundled font, whose glyphs are checked first.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from benchmarks.dicom_masking import readable
from data_zh.fonts import BUNDLED_FONT
from ultra.dicom.burned_in import ocr_available
from ultra.dicom.process import ProcessOptions, process_input
from ultra.dicom.regions import Box, scan_pixels
from ultra.dicom.sources import InputItem
from ultra.media.dicom import decode_frame_rgb, read_dataset

KEY = b"masking-key-0123456789abcdef012345"
UID_ROOT = "1.2.826.0.1.3680043.10.998."
SCAN_UNCR = (8, 108, 632, 338)  # US1_UNCR's scan area (x0, y0, x1, y1), inside its text panels
MAX_LOSS = 0.05

needs_ocr = pytest.mark.skipif(not ocr_available(), reason="needs the ocr extra (rapidocr, onnxruntime)")


def _us(shared_data: Path, name: str) -> Path:
    path = shared_data / "dicom" / "us" / name
    if not path.is_file():
        pytest.skip(f"shared file dicom/us/{name} is absent")
    return path


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(BUNDLED_FONT), size)


def _assert_glyphs(text: str) -> None:
    cmap = TTFont(str(BUNDLED_FONT)).getBestCmap()
    missing = [c for c in text if not c.isspace() and ord(c) not in cmap]
    assert not missing, f"the bundled font lacks {missing}: the planted text would be boxes"


def _process(path: Path, out: Path, **options: object) -> dict:
    item = InputItem("in-test", path.name, path=str(path))
    outcome = process_input(item, str(out), ProcessOptions(**options), KEY)
    assert outcome.status == "processed", outcome.reason
    assert outcome.record is not None
    return outcome.record


def _kept_share(source: np.ndarray, output: np.ndarray, crop: Box, within: list[Box]) -> float:
    """Share of the source's scan pixels (inside ``within``) that the output still shows."""
    scan = scan_pixels(source, within=within)[crop.y0 : crop.y1, crop.x0 : crop.x1]
    shown = output.max(axis=2) > 0
    return float((scan & shown).sum()) / max(1, int(scan.sum()))


@needs_ocr
def test_ybr_cine_and_palette_frames_keep_their_scan(shared_data: Path, tmp_path: Path) -> None:
    for name, frames in (("examples_ybr_color.dcm", 2), ("OBXXXX1A_2frame.dcm", 2)):
        path = _us(shared_data, name)
        record = _process(path, tmp_path / name, frames_per_cine=frames)
        assert record["pixel_cleaning"]["scan_loss"] <= MAX_LOSS
        ds = read_dataset(path)
        crop = Box(*record["crop_box"])
        for image, index in zip(record["images"], record["frame_indices"], strict=True):
            output = np.asarray(Image.open(tmp_path / name / image))
            kept = _kept_share(decode_frame_rgb(ds, index), output, crop, [crop])
            # Text boxes inside the scan are small; before, these frames were black or lost ~60%.
            assert kept >= 1 - 2 * MAX_LOSS, f"{name} frame {index}: {kept:.1%} of the scan kept"


@needs_ocr
def test_small_image_keeps_its_whole_scan(shared_data: Path, tmp_path: Path) -> None:
    record = _process(_us(shared_data, "ExplVR_BigEnd.dcm"), tmp_path)
    assert record["crop_box"] == [0, 0, 80, 60]  # was cut to 41x6
    assert np.asarray(Image.open(tmp_path / record["images"][0])).shape == (60, 80, 3)


def test_masking_that_would_erase_the_scan_fails_with_the_reason(shared_data: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(_us(shared_data, "ExplVR_BigEnd.dcm"))
    _set_region(ds, (0, 0, 80, 60))  # the scan reaches the top rows, where the band is blanked
    path = tmp_path / "band.dcm"
    ds.save_as(path)
    outcome = process_input(
        InputItem("in-band", path.name, path=str(path)), str(tmp_path / "out"), ProcessOptions(ocr=False), KEY
    )
    assert outcome.status == "failed"
    assert outcome.reason is not None
    assert "of the scan area" in outcome.reason and "at most 5%" in outcome.reason
    assert not (tmp_path / "out" / "images").exists()


def _set_region(ds: Dataset, box: tuple[int, int, int, int]) -> None:
    region = Dataset()
    region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = 1, 1, 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = box[0], box[1]
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = box[2] - 1, box[3] - 1
    ds.SequenceOfUltrasoundRegions = [region]


def _draw(rgb: np.ndarray, text: str, size: int, at: tuple[int, int], fill: tuple[int, int, int]) -> Box:
    _assert_glyphs(text)
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    draw.text(at, text, font=_font(size), fill=fill)
    rgb[...] = np.asarray(image)
    return Box(*draw.textbbox(at, text, font=_font(size)))


PLANTED = [  # header regions, text, size, where, colour: the kinds that stayed readable before
    ("none", "张三丰 男", 9, (297, 245), (255, 200, 0)),
    ("central", "ZHANG WEI 1963", 20, (219, 188), (170, 170, 170)),
    ("full", "韩梅梅 45岁", 28, (60, 250), (255, 255, 255)),
]


@needs_ocr
@pytest.mark.parametrize(("header", "text", "size", "at", "fill"), PLANTED)
def test_text_planted_in_the_scan_is_unreadable_after_masking(
    shared_data: Path, tmp_path: Path, header: str, text: str, size: int, at: tuple[int, int], fill
) -> None:
    ds = pydicom.dcmread(_us(shared_data, "US1_UNCR.dcm"))
    rgb = ds.pixel_array.copy()
    _draw(rgb, text, size, at, fill)
    x0, y0, x1, y1 = SCAN_UNCR
    before = readable(rgb, text) or readable(rgb[y0:y1, x0:x1], text)  # the frame, or its scan as a PNG
    assert before, "the planted text must be readable before masking"
    ds.PixelData = rgb.tobytes()
    ds.SOPInstanceUID = f"{UID_ROOT}{size}"
    if header != "none":
        _set_region(ds, (0, 0, 640, 480) if header == "full" else SCAN_UNCR)
    path = tmp_path / "planted.dcm"
    ds.save_as(path)
    record = _process(path, tmp_path / "out", write_dicom=True)
    png = np.asarray(Image.open(tmp_path / "out" / record["images"][0]))
    written = pydicom.dcmread(tmp_path / "out" / record["dicom"])
    assert not readable(png, text) and not readable(written.pixel_array, text)
    codes = {item.CodeValue for item in written.DeidentificationMethodCodeSequence}
    assert record["pixel_cleaning"]["checked"]
    assert written.BurnedInAnnotation == "NO" and "113101" in codes


def test_without_ocr_the_header_says_text_may_remain(shared_data: Path, tmp_path: Path) -> None:
    record = _process(_us(shared_data, "US1_UNCR.dcm"), tmp_path, write_dicom=True, ocr=False)
    written = pydicom.dcmread(tmp_path / record["dicom"])
    assert not record["pixel_cleaning"]["checked"]
    assert written.BurnedInAnnotation == "YES"
    assert "113101" not in {item.CodeValue for item in written.DeidentificationMethodCodeSequence}


def _cine_with_text_on(shared_data: Path, path: Path, frames: int, on: int) -> Box:
    """A native RGB cine from the echo loop's first frames (a beating heart), a name on one frame."""
    source = read_dataset(_us(shared_data, "examples_ybr_color.dcm"))
    stack = np.stack([decode_frame_rgb(source, index) for index in range(frames)])
    box = _draw(stack[on], "ZHANG 张伟", 14, (150, 110), (255, 255, 255))
    ds = pydicom.dcmread(_us(shared_data, "examples_ybr_color.dcm"), stop_before_pixels=True)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.NumberOfFrames = frames
    ds.set_pixel_data(stack, "RGB", 8, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    return box


@needs_ocr
def test_text_on_one_frame_of_a_cine_is_masked_on_that_frame(shared_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "cine.dcm"
    box = _cine_with_text_on(shared_data, path, frames=20, on=8)
    record = _process(path, tmp_path / "out", write_dicom=True, crop=False, frames_per_cine=20)
    checked = record["pixel_cleaning"]["ocr_frames"]
    assert 8 in checked and len(checked) <= 6, checked  # the heart's motion does not send every frame
    frames = pydicom.dcmread(tmp_path / "out" / record["dicom"]).pixel_array
    assert frames[8, box.y0 : box.y1, box.x0 : box.x1].max() == 0
    png = np.asarray(Image.open(tmp_path / "out" / record["images"][8]))
    assert png[box.y0 : box.y1, box.x0 : box.x1].max() == 0
    summary = json.dumps(record["pixel_cleaning"])
    assert '"checked": true' in summary


@needs_ocr
def test_the_detector_runs_as_configured_and_reports_its_input_size() -> None:
    """The detector's threads and input sizes are the ones ultra states (RapidOCR's engine config
    holds them), and input_size is what RapidOCR's own resize produces for a view."""
    from rapidocr.ch_ppocr_det.utils import DetPreProcess
    from rapidocr.utils.process_img import resize_image_within_bounds

    from ultra.dicom.burned_in import DETECT_MAX_SIDE, DETECT_MIN_SIDE, TextDetector, detector_threads

    detector = TextDetector(threads=1)
    cfg = detector.engine.cfg
    assert (str(cfg.Det.limit_type), int(cfg.Det.limit_side_len)) == ("min", DETECT_MIN_SIDE)
    assert int(cfg.Global.max_side_len) == DETECT_MAX_SIDE
    assert int(cfg.EngineConfig.onnxruntime.intra_op_num_threads) == 1
    assert detector_threads(workers=10**6) == 1 and TextDetector().threads == detector_threads()
    resize = DetPreProcess(cfg.Det.limit_side_len, cfg.Det.limit_type).resize
    for width, height in [(80, 60), (624, 230), (640, 480), (1024, 768), (3000, 2500)]:
        view, _, _ = resize_image_within_bounds(
            np.zeros((height, width, 3), np.uint8), cfg.Global.min_side_len, cfg.Global.max_side_len
        )
        net_h, net_w = resize(view).shape[:2]
        assert detector.input_size(width, height) == (net_w, net_h), (width, height)
        assert max(net_w, net_h) <= max(DETECT_MAX_SIDE, DETECT_MIN_SIDE * max(width, height) / min(width, height)) + 32
    assert detector.input_size(1024, 768) == (1024, 768)  # large enough already: never grown
    rgb = np.zeros((60, 80, 3), np.uint8)
    _draw(rgb, "AB 12", 12, (6, 20), (255, 255, 255))
    quads = detector(rgb)
    assert len(quads) >= 1 and quads[..., 0].max() <= 80 + 1 and quads[..., 1].max() <= 60 + 1
