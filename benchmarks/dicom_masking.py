"""What pixel de-identification keeps and what it lets through, on the shared ultrasound files.

Three measurements, each independent of the masking code (so the same script scores an older
version of it too):

- kept: for every PNG of ``process_input`` over ``dicom/us``, the share of the source frame's
  non-black pixels inside the crop box that the PNG still shows (text and marks inside the crop
  are meant to go), the PNG's size, and the masking's own largest share of scan blanked outside
  text boxes (``pixel_cleaning.scan_loss``, where the code has it);
- planted: US1_UNCR with text drawn inside its scan (Latin and Chinese in the bundled font, 9–28
  px, white / grey / yellow / blue; no, full-frame or central ultrasound region in the header):
  cases where RapidOCR (detection + recognition, any confidence) still reads a piece of the text
  (2 CJK or 3 Latin characters) in the PNG or the written DICOM, and the BurnedInAnnotation written;
- cine: a 20-frame RGB cine from the echo loop with a name on frame 8 only: the frames OCR'd and
  whether frame 8's text box is black in the written DICOM.

    python -m benchmarks.dicom_masking [--cases 30]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from benchmarks.shared_data import shared_us_folder
from data_zh.fonts import BUNDLED_FONT
from ultra.dicom.process import ProcessOptions, process_input
from ultra.dicom.sources import InputItem
from ultra.media.dicom import decode_frame_rgb, read_dataset

KEY = b"benchmark-key-0123456789abcdef0123"
SCAN_UNCR = (8, 108, 632, 338)
COLOURS = [(255, 255, 255), (170, 170, 170), (255, 200, 0), (120, 200, 255)]
TEXTS = ("ZHANG WEI 1963", "张三丰 男")
BLACK = 13  # of 255: darker source pixels are margin


def _process(path: Path, out: Path, **options: object):
    item = InputItem(path.stem, path.name, path=str(path))
    return process_input(item, str(out), ProcessOptions(**options), KEY)


def kept(folder: Path, out: Path) -> None:
    print("| file | status | PNG size (w×h) | crop shown, per PNG | scan lost outside text |")
    print("|---|---|---|---|---|")
    for path in sorted(folder.glob("*.dcm")):
        outcome = _process(path, out / path.stem)
        if outcome.record is None:
            print(f"| {path.name} | {outcome.status}: {outcome.reason} | | | |")
            continue
        ds = read_dataset(path)
        x0, y0, x1, y1 = outcome.record["crop_box"]
        shares, size = [], ""
        for image, index in zip(outcome.record["images"], outcome.record["frame_indices"], strict=True):
            png = np.asarray(Image.open(out / path.stem / image))
            source = decode_frame_rgb(ds, index)[y0:y1, x0:x1].max(axis=2) > BLACK
            shown = png.max(axis=2) > 0
            shares.append(f"{(source & shown).sum() / max(1, source.sum()):.0%}")
            size = f"{png.shape[1]}×{png.shape[0]}"
        lost = outcome.record["pixel_cleaning"].get("scan_loss")  # the masking's own measure, if any
        lost_text = "—" if lost is None else f"{lost:.1%}"
        print(f"| {path.name} | {outcome.status} | {size} | {' '.join(shares)} | {lost_text} |")


@functools.cache
def _reader():
    from rapidocr import RapidOCR

    return RapidOCR(params={"Global.log_level": "critical"})


def readable(rgb: np.ndarray, text: str) -> list[str]:
    """What RapidOCR reads (detection + recognition, any confidence) that shares a piece of
    ``text`` (2 CJK or 3 Latin characters): the benchmark's and the masking tests' one measure."""
    read = _reader()(np.ascontiguousarray(rgb), text_score=0.0).txts or []
    planted = text.replace(" ", "").upper()
    size = 2 if any(ord(c) > 127 for c in planted) else 3
    pieces = {planted[i : i + size] for i in range(len(planted) - size + 1)}
    return [t for t in read if any(p in t.replace(" ", "").upper() for p in pieces)]


def _region(ds: Dataset, box: tuple[int, int, int, int]) -> None:
    region = Dataset()
    region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = 1, 1, 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = box[0], box[1]
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = box[2] - 1, box[3] - 1
    ds.SequenceOfUltrasoundRegions = [region]


def _draw(rgb: np.ndarray, text: str, size: int, at: tuple[int, int], fill) -> tuple[int, int, int, int]:
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(BUNDLED_FONT), size)
    draw.text(at, text, font=font, fill=fill)
    rgb[...] = np.asarray(image)
    return draw.textbbox(at, text, font=font)


def planted(folder: Path, out: Path, cases: int) -> None:
    rng = np.random.default_rng(0)
    grid = [(h, t, s) for h in ("none", "full", "central") for t in TEXTS for s in (9, 12, 16, 20, 28)]
    leaks, claims, start = 0, {}, time.perf_counter()
    for number, (header, text, size) in enumerate(grid[:cases]):
        at = (int(rng.integers(20, 400)), int(rng.integers(115, 330 - size)))
        fill = COLOURS[int(rng.integers(len(COLOURS)))]
        ds = pydicom.dcmread(folder / "US1_UNCR.dcm")
        rgb = ds.pixel_array.copy()
        _draw(rgb, text, size, at, fill)
        ds.PixelData = rgb.tobytes()
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.997.{number}"
        if header != "none":
            _region(ds, (0, 0, 640, 480) if header == "full" else SCAN_UNCR)
        path = out / f"planted{number}.dcm"
        ds.save_as(path)
        outcome = _process(path, out / "planted", write_dicom=True)
        if outcome.record is None:
            print(f"  case {number}: {outcome.status} ({outcome.reason})")
            continue
        png = np.asarray(Image.open(out / "planted" / outcome.record["images"][0]))
        written = pydicom.dcmread(out / "planted" / outcome.record["dicom"])
        hits = readable(png, text) + readable(written.pixel_array, text)
        claim = str(written.get("BurnedInAnnotation", "-"))
        claims[claim] = claims.get(claim, 0) + 1
        if hits:
            leaks += 1
            case = f"case {number} ({header}, {text!r}, {size} px, {fill})"
            print(f"  {case}: readable {hits}, header says {claim}")
    took = time.perf_counter() - start
    done = min(cases, len(grid))
    print(f"planted: readable in {leaks} of {done} cases; BurnedInAnnotation {claims}; {took:.0f} s")


def cine(folder: Path, out: Path) -> None:
    source = read_dataset(folder / "examples_ybr_color.dcm")
    stack = np.stack([decode_frame_rgb(source, index) for index in range(20)])
    x0, y0, x1, y1 = _draw(stack[8], "ZHANG 张伟", 14, (150, 110), (255, 255, 255))
    ds = pydicom.dcmread(folder / "examples_ybr_color.dcm", stop_before_pixels=True)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.NumberOfFrames = 20
    ds.set_pixel_data(stack, "RGB", 8, generate_instance_uid=False)
    path = out / "cine.dcm"
    ds.save_as(path, enforce_file_format=True)
    outcome = _process(path, out / "cine", write_dicom=True, crop=False)
    assert outcome.record is not None, outcome.reason
    frames = pydicom.dcmread(out / "cine" / outcome.record["dicom"]).pixel_array
    masked = frames[8, y0:y1, x0:x1].max() == 0
    checked = outcome.record["pixel_cleaning"].get("ocr_frames")
    print(f"cine: frames OCR'd {checked}; frame 8 masked: {masked}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=30, help="planted cases (of 30)")
    args = parser.parse_args()
    folder = shared_us_folder()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        kept(folder, out)
        cine(folder, out)
        planted(folder, out, args.cases)


if __name__ == "__main__":
    main()
