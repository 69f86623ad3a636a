"""LLaVA-format JSON/JSONL files (``{"id", "image"|"images", "conversations"}``) as a source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_zh.converters.base import ConversionError
from data_zh.io import read_llava
from data_zh.schema import Record


def convert_llava(root: str | Path, image_root: str | Path | None = None, **defaults: Any) -> list[Record]:
    """One file, or every ``*.json``/``*.jsonl`` of a folder; images resolve against ``image_root``
    (default: the file's folder). ``defaults`` fill fields LLaVA does not carry (source, modality…)."""
    root = Path(root)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted([*root.glob("*.jsonl"), *root.glob("*.json")])
    else:
        raise ConversionError(f"{root}: no such file or folder (expected LLaVA .json/.jsonl)")
    if not files:
        raise ConversionError(f"{root}: no .json or .jsonl file found")
    records = []
    for path in files:
        base = Path(image_root) if image_root is not None else path.parent
        records.extend(read_llava(path, root=str(base.resolve()), **defaults))
    return records
