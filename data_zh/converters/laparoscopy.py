"""Laparoscopy frames with YOLO boxes (oriented ``cls x1 y1 … x4 y4`` or axis-aligned ``cls cx cy w h``).

The shared copy is a Roboflow export of Cholec80 frames: non-commercial, for tests only.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from data_zh.converters.base import ConversionError, require_dir
from data_zh.schema import Labels, Media, OrientedBox, Record, qa_turns
from data_zh.splits import load_split_payload, split_lookup
from fusion.progress import progress_bar

logger = logging.getLogger(__name__)

LAPAROSCOPY_LICENCE = (
    "CC BY 4.0 per Roboflow export; frames from Cholec80 (CC BY-NC-SA 4.0): non-commercial research only"
)
GAP_SPLIT = "gap"  # frames dropped between temporal blocks of different splits: in no split
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_ROBOFLOW_FRAME = re.compile(r"^(?P<video>.+?)_(?:mp4|avi|mov)-(?P<frame>\d+)_(?:jpg|png)\.rf\.")
_TRAILING_NUMBER = re.compile(r"^(?P<video>.*?)[_-]?(?P<frame>\d+)$")

# English class name -> (Chinese name, kind); kind decides instrument vs organ questions.
CLASS_ZH: dict[str, tuple[str, str]] = {
    "Allis": ("组织钳", "instrument"),
    "Bag": ("取物袋", "instrument"),
    "Cautery": ("电凝钩", "instrument"),
    "Forceps": ("抓钳", "instrument"),
    "Suction": ("吸引器", "instrument"),
    "Clipper": ("施夹器", "instrument"),
    "Scissors": ("剪刀", "instrument"),
    "Grasper": ("抓钳", "instrument"),
    "Hook": ("电凝钩", "instrument"),
    "Irrigator": ("冲洗器", "instrument"),
    "Gallbladder": ("胆囊", "organ"),
    "Liver": ("肝脏", "organ"),
}


def read_classes(path: Path) -> list[str]:
    """classes.txt as ``index name`` lines or one name per line, in index order."""
    if not path.is_file():
        raise ConversionError(f"{path}: classes.txt not found")
    names: dict[int, str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        line = line.strip()
        if not line:
            continue
        head, _, rest = line.partition(" ")
        if head.isdigit() and rest.strip():
            names[int(head)] = rest.strip()
        else:
            names[line_no] = line
    return [names[index] for index in sorted(names)]


def frame_index(name: str) -> tuple[str, int | None]:
    """(video name, frame index) from a frame's file stem; index None when the name has none."""
    match = _ROBOFLOW_FRAME.match(name) or _TRAILING_NUMBER.match(Path(name).stem)
    return (match.group("video"), int(match.group("frame"))) if match else (Path(name).stem, None)


def read_boxes(path: Path, classes: list[str]) -> list[OrientedBox]:
    """Boxes of one label file; bad lines are logged with file and line and skipped."""
    boxes: list[OrientedBox] = []
    if not path.is_file():
        return boxes
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        logger.warning("%s: skipped unreadable label file: %s", path, error)
        return boxes
    for line_no, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            class_id, values = int(parts[0]), [float(v) for v in parts[1:]]
            if not 0 <= class_id < len(classes):
                raise ValueError(f"class {class_id} not in classes.txt ({len(classes)} classes)")
            if len(values) == 8:
                points = list(zip(values[0::2], values[1::2], strict=True))
            elif len(values) == 4:
                cx, cy, w, h = values
                points = [
                    (cx - w / 2, cy - h / 2),
                    (cx + w / 2, cy - h / 2),
                    (cx + w / 2, cy + h / 2),
                    (cx - w / 2, cy + h / 2),
                ]
            else:
                raise ValueError(f"expected 4 or 8 coordinates, got {len(values)}")
            boxes.append(OrientedBox(label=classes[class_id], points=points))
        except ValueError as error:
            logger.warning("%s:%d: skipped box: %s", path, line_no, error)
    return boxes


def visible_classes(boxes: list[OrientedBox], kind: str) -> list[str]:
    """Distinct class names of one kind ("instrument"/"organ") in first-seen order."""
    seen: list[str] = []
    for box in boxes:
        if CLASS_ZH.get(box.label, (box.label, "instrument"))[1] == kind and box.label not in seen:
            seen.append(box.label)
    return seen


def zh_names(classes: list[str]) -> str:
    """Chinese names joined with 、, or 无 when empty."""
    return "、".join(CLASS_ZH.get(name, (name, ""))[0] for name in classes) or "无"


def _subsets(root: Path) -> list[Path]:
    if (root / "images").is_dir():
        return [root]
    return sorted(path for path in root.iterdir() if (path / "images").is_dir())


def convert_laparoscopy(root: str | Path, split_map: dict[str, str] | None = None) -> list[Record]:
    """One detection record per frame of every ``<subset>/images`` folder, boxes from ``labels/``.

    Frames of the committed split carry its name; frames dropped as the temporal gap carry "gap".
    """
    root = require_dir(root, "YOLO frames: classes.txt and <subset>/images + <subset>/labels").resolve()
    classes = read_classes(root / "classes.txt")
    if split_map is None:
        split_map = {key: GAP_SPLIT for key in load_split_payload("laparoscopy")["dropped"]}
        split_map.update(split_lookup("laparoscopy"))
    frames = [
        image
        for subset in _subsets(root)
        for image in sorted((subset / "images").iterdir())
        if image.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not frames:
        raise ConversionError(f"{root}: no frames found under <subset>/images")
    records = []
    for image in progress_bar(frames, description="laparoscopy", total=len(frames), leave=False):
        rel = image.relative_to(root).as_posix()
        boxes = read_boxes(image.parent.parent / "labels" / f"{image.stem}.txt", classes)
        video, index = frame_index(image.name)
        instruments, organs = visible_classes(boxes, "instrument"), visible_classes(boxes, "organ")
        records.append(
            Record(
                id=f"laparoscopy-{image.parent.parent.name}-{video}-{index if index is not None else image.stem}",
                source="laparoscopy",
                licence=LAPAROSCOPY_LICENCE,
                specialty="surgery",
                modality="endoscopic_video",
                language="zh",
                task="object_detection",
                media=Media(root=str(root), images=[rel]),
                conversations=qa_turns(
                    "图中可见哪些手术器械和器官？", f"器械：{zh_names(instruments)}；器官：{zh_names(organs)}"
                ),
                answer_type="open",
                labels=Labels(classes=sorted({box.label for box in boxes}), boxes=boxes),
                split=split_map.get(rel),
                extra={"video": video, "frame_index": index, "subset": image.parent.parent.name},
            )
        )
    return records
