"""What every converter shares: its error type and a progress bar for long conversions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


class ConversionError(ValueError):
    """A source that cannot be converted at all (missing folder or index file); names the path."""


def require_dir(root: str | Path, what: str) -> Path:
    """The root as a Path, or a ConversionError saying what was expected there."""
    root = Path(root)
    if not root.is_dir():
        raise ConversionError(f"{root}: not a folder (expected {what})")
    return root


def load_json(path: Path) -> Any:
    """JSON from a file, or a ConversionError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ConversionError(f"{path}: cannot read JSON ({error})") from None


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (count, rate, time left); off when stderr is not a terminal."""
    yield from tqdm(items, desc=description, total=total, unit="item", disable=None, leave=False)
