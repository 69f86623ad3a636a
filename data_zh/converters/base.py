"""What every converter shares: its error type and its readers of folders and JSON files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
