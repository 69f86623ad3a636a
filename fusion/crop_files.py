"""Crop many ultrasound images to their scan regions; one bad file never stops the batch."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from fusion.pixels import read_image_file
from fusion.ultrasound import ScanBox, crop_scan_region, draw_scan_box

logger = logging.getLogger(__name__)

ImageLoader = Callable[[Path], Image.Image]  # raises OSError or ValueError naming the file


@dataclass
class CropResult:
    """What happened to one input: the box and written files, or the error that stopped it."""

    source: str
    box: ScanBox | None = None
    crop_path: str | None = None
    preview_path: str | None = None
    error: str | None = None


def crop_image_files(
    paths: Iterable[str | Path],
    out_dir: str | Path,
    loader: ImageLoader = read_image_file,
    previews: bool = True,
    on_done: Callable[[CropResult], None] | None = None,
) -> list[CropResult]:
    """Write ``<stem>_scan.png`` (and ``<stem>_box.png`` with the box drawn) per input plus
    ``crops.jsonl``; unreadable inputs are recorded with their error and skipped. The default
    loader is ``fusion.pixels.read_image_file``; ``ultra fusion crop`` passes
    ``ultra.media.read_image`` (DICOM, size limits)."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for raw_path in paths:
        path = Path(raw_path)
        result = CropResult(source=str(path))
        try:
            image = loader(path)
        except (OSError, ValueError) as error:
            result.error = str(error)  # a loader's error names the file
        else:
            try:
                crop, box = crop_scan_region(image)
                result.box = box
                result.crop_path = str(folder / f"{path.stem}_scan.png")
                crop.save(result.crop_path)
                if previews:
                    result.preview_path = str(folder / f"{path.stem}_box.png")
                    draw_scan_box(image, box).save(result.preview_path)
            except (OSError, ValueError) as error:
                result.error = f"{path}: {error}"
        if result.error is not None:
            logger.warning("could not crop: %s", result.error)
        results.append(result)
        if on_done is not None:
            on_done(result)
    with (folder / "crops.jsonl").open("w", encoding="utf-8") as handle:
        for result in results:
            handle.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
    return results
