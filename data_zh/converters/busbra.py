"""BUS-BRA layout (``bus_data.csv``, ``5-fold-cv.csv``, ``Images/``, ``Masks/``): one record per image.

BUS-BRA's ``Side`` column is not breast laterality: ``-l`` and ``-r`` images are the two halves of a
dual-view screen (two views of one lesion), ``-s`` a single view; records call it ``view``. Every
image shows a biopsy-proven lesion, so there is no normal class.

Boxes: ``BBOX`` is ``[x, y, w, h]`` with 1-based ``x, y`` (the lesion's first column and row) and
``x + w``, ``y + h`` its last ones, as the masks show. Records keep it as written (``bbox_csv``)
and give ``box_px``, ``[x0, y0, x1, y1]`` in 0-based pixel edges of the file (``x1`` one past the
last lesion column: the mask's extent), and ``box_1000``, the same box in 0–1000 of the image as
the model sees it: the encoders resize the whole image to their square input without crop or pad,
so a point's share of the width and of the height is kept (``round(1000 * x / width)``).
``labels.boxes`` holds the box as four corners normalised to [0, 1].
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from data_zh.converters.base import ConversionError, require_dir
from data_zh.masks import MASKS
from data_zh.schema import Labels, Media, OrientedBox, Record, qa_turns

logger = logging.getLogger(__name__)

BUSBRA_LICENCE = (
    "BUS-BRA licence, MIT-style (use, copy, modify, publish and distribute with the notice kept); "
    "citation required: Gómez-Flores W., Gregorio-Calas M.J., Coelho de Albuquerque Pereira W., "
    '"BUS-BRA: A Breast Ultrasound Dataset for Assessing Computer-aided Diagnosis Systems", '
    "Medical Physics 2023"
)
BUSBRA_LAYOUT = "the BUS-BRA folder (bus_data.csv, 5-fold-cv.csv, Images/, Masks/)"
PATHOLOGIES = ("benign", "malignant")
VIEWS = {"l": "left half of a dual-view image", "r": "right half of a dual-view image", "s": "single view"}
PATHOLOGY_ZH = {"benign": "良性", "malignant": "恶性"}
CLASSIFICATION_QUESTION = "这张乳腺超声图像中的病灶是良性还是恶性？"
COLUMNS = ("ID", "Case", "Histology", "Pathology", "BIRADS", "Device", "Width", "Height", "BBOX")


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise ConversionError(f"{path}: not found (expected {BUSBRA_LAYOUT})")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = sorted(set(columns) - set(reader.fieldnames or []))
        if missing:
            raise ConversionError(f"{path}: missing column(s) {missing}")
        return [{key: (value or "").strip() for key, value in row.items()} for row in reader]


def read_official_folds(root: str | Path) -> dict[str, int]:
    """Image ID -> the official cross-validation fold it is tested in (``5-fold-cv.csv`` ``kFold``)."""
    path = Path(root) / "5-fold-cv.csv"
    return {row["ID"]: int(row["kFold"]) for row in _read_csv(path, ("ID", "kFold"))}


def view_of(image_id: str) -> str:
    """``l``, ``r`` or ``s``: the ID's suffix (which half of a dual-view screen, or a single view)."""
    view = image_id.rsplit("-", 1)[-1]
    if view not in VIEWS:
        raise ValueError(f"{image_id}: no view suffix (-l, -r or -s)")
    return view


def pixel_box(bbox: list[int]) -> list[int]:
    """``[x0, y0, x1, y1]`` in 0-based pixel edges from BUS-BRA's 1-based ``[x, y, w, h]``."""
    x, y, w, h = bbox
    return [x - 1, y - 1, x + w, y + h]


def box_1000(box: list[int], width: int, height: int) -> list[int]:
    """A pixel-edge box in 0–1000 of the image stretched to the model's square input."""
    x0, y0, x1, y1 = box
    return [round(1000 * x0 / width), round(1000 * y0 / height)] + [
        round(1000 * x1 / width),
        round(1000 * y1 / height),
    ]


def _parse(row: dict[str, str], where: str) -> dict[str, Any]:
    """The typed facts of one bus_data.csv row; a ValueError names the row and the field."""
    pathology = row["Pathology"].lower()
    if pathology not in PATHOLOGIES:
        raise ValueError(f"{where}: Pathology {row['Pathology']!r} is not one of {PATHOLOGIES}")
    try:
        bbox = [int(value) for value in json.loads(row["BBOX"])]
        width, height, birads = int(row["Width"]), int(row["Height"]), int(row["BIRADS"])
    except (ValueError, TypeError) as error:
        raise ValueError(f"{where}: unreadable BBOX, Width, Height or BIRADS ({error})") from None
    if len(bbox) != 4 or bbox[2] <= 0 or bbox[3] <= 0:
        raise ValueError(f"{where}: BBOX {row['BBOX']!r} is not [x, y, w, h] with w, h > 0")
    box = pixel_box(bbox)
    if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
        raise ValueError(f"{where}: BBOX {row['BBOX']!r} leaves the {width}x{height} image")
    return {
        "pathology": pathology,
        "histology": row["Histology"],
        "birads": birads,
        "scanner": row["Device"],
        "patient": row["Case"],
        "view": view_of(row["ID"]),
        "width": width,
        "height": height,
        "bbox_csv": bbox,
        "box_px": box,
        "box_1000": box_1000(box, width, height),
    }


def read_busbra_rows(root: str | Path) -> dict[str, dict[str, Any]]:
    """Image ID -> its typed facts (plus ``image``, ``mask`` paths relative to root and the official
    ``fold``); rows whose image is missing or whose fields do not read are logged and skipped."""
    root = require_dir(root, BUSBRA_LAYOUT)
    folds = read_official_folds(root)
    rows: dict[str, dict[str, Any]] = {}
    csv_path = root / "bus_data.csv"
    for line, row in enumerate(_read_csv(csv_path, COLUMNS), start=2):
        where = f"{csv_path}:{line}"
        image_id = row["ID"]
        image, mask = f"Images/{image_id}.png", f"Masks/mask_{image_id.removeprefix('bus_')}.png"
        if image_id in rows:
            logger.warning("%s: skipped duplicate row for %r", where, image_id)
            continue
        if not (root / image).is_file():
            logger.warning("%s: skipped: image %s not found", where, root / image)
            continue
        try:
            facts = _parse(row, where)
        except ValueError as error:
            logger.warning("skipped: %s", error)
            continue
        masks = [mask] if (root / mask).is_file() else []
        rows[image_id] = {**facts, "image": image, MASKS: masks, "fold": folds.get(image_id)}
    return rows


def busbra_record(root: Path, image_id: str, facts: dict[str, Any], split: str | None) -> Record:
    """The benign/malignant record of one image, every BUS-BRA fact of it in ``extra``."""
    x0, y0, x1, y1 = facts["box_px"]
    width, height = facts["width"], facts["height"]
    left, top, right, bottom = x0 / width, y0 / height, x1 / width, y1 / height
    corners = [(left, top), (right, top), (right, bottom), (left, bottom)]
    extra = {key: value for key, value in facts.items() if key != "image"}
    return Record(
        id=f"busbra-{image_id.removeprefix('bus_')}",
        source="busbra",
        licence=BUSBRA_LICENCE,
        specialty="breast",
        modality="US",
        language="zh",
        task="lesion_classification",
        media=Media(root=str(root.resolve()), images=[facts["image"]]),
        conversations=qa_turns(CLASSIFICATION_QUESTION, PATHOLOGY_ZH[facts["pathology"]]),
        answer_type="closed",
        labels=Labels(classes=[facts["pathology"]], boxes=[OrientedBox(label="lesion", points=corners)]),
        split=split,
        extra={"image_id": image_id, **extra},
    )


def convert_busbra(root: str | Path, split_map: dict[str, str] | None = None) -> list[Record]:
    """One record per bus_data.csv row, tagged with its committed split (image ID -> split)."""
    from data_zh.splits import split_lookup

    root = Path(root)
    rows = read_busbra_rows(root)
    split_map = split_lookup("busbra") if split_map is None else split_map
    return [busbra_record(root, image_id, facts, split_map.get(image_id)) for image_id, facts in rows.items()]
