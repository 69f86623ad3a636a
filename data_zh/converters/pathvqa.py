"""PathVQA: the original QA files (``qas/<split>/<split>_qa.pkl`` or ``.json``) or the common parquet
layout (``data/<split>-*.parquet`` with ``image`` bytes, ``question``, ``answer``)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import re
from pathlib import Path
from typing import Any

from data_zh.converters.base import ConversionError, require_dir
from data_zh.schema import Media, Record, qa_turns
from fusion.progress import progress_bar

logger = logging.getLogger(__name__)

PATHVQA_LICENCE = "MIT (He et al., PathVQA, 2020)"
_SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "valid": "val", "test": "test"}
_SPLIT_PREFIX = re.compile(r"^(train|validation|valid|val|test)")
_PLAIN_TYPES = {("builtins", name) for name in ("list", "dict", "str", "int", "float", "tuple", "set")}


class _PlainUnpickler(pickle.Unpickler):
    """Only plain containers and scalars: the QA pickles need nothing else, and nothing else is safe."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PLAIN_TYPES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a QA pickle")


def _split_of(path: Path) -> str | None:
    match = _SPLIT_PREFIX.match(path.name.lower())
    return _SPLIT_NAMES[match.group(1)] if match else None


def _record(
    split: str, index: int, question: Any, answer: Any, image: str, image_root: Path, extra: dict
) -> Record:
    answer = str(answer).strip()
    closed = answer.lower() in {"yes", "no"}
    return Record(
        id=f"pathvqa-{split}-{index}",
        source="pathvqa",
        licence=PATHVQA_LICENCE,
        specialty="pathology",
        modality="pathology",
        language="en",
        task="closed_vqa" if closed else "open_vqa",
        media=Media(root=str(image_root), images=[image]),
        conversations=qa_turns(str(question).strip(), answer),
        answer_type="closed" if closed else "open",
        split=split,
        extra=extra,
    )


def _load_qa_file(path: Path) -> list[dict[str, Any]]:
    try:
        if path.suffix == ".pkl":
            with path.open("rb") as handle:
                items = _PlainUnpickler(handle).load()
        else:
            items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, pickle.UnpicklingError, json.JSONDecodeError, EOFError) as error:
        raise ConversionError(f"{path}: cannot read PathVQA QA file ({error})") from None
    if not isinstance(items, list):
        raise ConversionError(f"{path}: expected a list of QA dicts, got {type(items).__name__}")
    return items


def _image_name(stem: str, folder: Path) -> str:
    for suffix in (".jpg", ".png", ".jpeg"):
        if (folder / f"{stem}{suffix}").is_file():
            return f"{stem}{suffix}"
    return f"{stem}.jpg" if not Path(stem).suffix else stem


def _convert_qa_files(root: Path, files: list[Path]) -> list[Record]:
    records = []
    for path in files:
        split = _split_of(path)
        if split is None:
            logger.warning("%s: skipped, cannot tell its split from the name", path)
            continue
        image_folder = root / "images" / split
        items = progress_bar(_load_qa_file(path), description=f"PathVQA {split}", leave=False)
        for index, item in enumerate(items):
            try:
                image = _image_name(str(item["image"]), image_folder)
                records.append(
                    _record(
                        split,
                        index,
                        item["question"],
                        item["answer"],
                        image,
                        image_folder,
                        {"image_id": item["image"]},
                    )
                )
            except (KeyError, ValueError, TypeError) as error:
                logger.warning("%s[%d]: skipped question: %s", path, index, error)
    return records


def _image_bytes(cell: Any) -> tuple[bytes, str | None]:
    if isinstance(cell, dict):
        return cell["bytes"], cell.get("path")
    if isinstance(cell, bytes | bytearray):
        return bytes(cell), None
    raise TypeError(f"image cell of type {type(cell).__name__} holds no bytes")


def _convert_parquet(files: list[Path], image_dir: Path) -> list[Record]:
    try:
        import pandas as pd
    except ImportError:
        raise ConversionError(
            "reading PathVQA parquet needs pandas and pyarrow (pip install pandas pyarrow)"
        ) from None
    from PIL import Image

    image_dir.mkdir(parents=True, exist_ok=True)
    records = []
    counters: dict[str, int] = {}
    for path in files:
        split = _split_of(path)
        if split is None:
            logger.warning("%s: skipped, cannot tell its split from the name", path)
            continue
        try:
            frame = pd.read_parquet(path, columns=["image", "question", "answer"])
        except Exception as error:  # pyarrow raises several unrelated types for a bad file
            raise ConversionError(
                f"{path}: cannot read parquet with image/question/answer ({error})"
            ) from None
        rows = frame.itertuples(index=False)
        for row in progress_bar(rows, description=f"PathVQA {split}", total=len(frame), leave=False):
            index = counters.get(split, 0)
            counters[split] = index + 1
            try:
                data, original = _image_bytes(row.image)
                digest = hashlib.sha1(data).hexdigest()[:16]
                suffix = (Image.open(io.BytesIO(data)).format or "png").lower().replace("jpeg", "jpg")
                name = f"{digest}.{suffix}"
                if not (image_dir / name).is_file():
                    (image_dir / name).write_bytes(data)
                extra = {"image_id": original or digest, "parquet": path.name}
                records.append(_record(split, index, row.question, row.answer, name, image_dir, extra))
            except (KeyError, TypeError, ValueError, OSError) as error:
                logger.warning("%s row %d: skipped: %s", path, index, error)
    return records


def convert_pathvqa(root: str | Path, image_dir: str | Path | None = None) -> list[Record]:
    """QA files when present, else parquet files; parquet images are written once each (named by
    content hash) into ``image_dir`` (default ``<root>/extracted_images``)."""
    root = require_dir(root, "PathVQA qas/<split>/<split>_qa.pkl|json or data/*.parquet").resolve()
    qa_files = sorted(p for p in root.rglob("*_qa.*") if p.suffix in {".pkl", ".json"})
    if qa_files:
        return _convert_qa_files(root, qa_files)
    parquet = sorted(root.rglob("*.parquet"))
    if parquet:
        return _convert_parquet(parquet, Path(image_dir) if image_dir else root / "extracted_images")
    raise ConversionError(f"{root}: no PathVQA QA files (*_qa.pkl / *_qa.json) or parquet files found")
