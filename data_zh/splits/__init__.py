"""The committed splits (``*.json`` beside this file); every consumer reads these, nothing re-splits."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SPLITS_DIR = Path(__file__).resolve().parent


def available_splits() -> list[str]:
    """Names of the committed split files."""
    return sorted(path.stem for path in SPLITS_DIR.glob("*.json"))


@cache
def _payload(name: str) -> dict[str, Any]:
    path = SPLITS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no committed split {name!r} ({path}); available: {available_splits()}")
    return json.loads(path.read_text(encoding="utf-8"))


def load_split_payload(name: str) -> dict[str, Any]:
    """The whole split file (seed, ratios, gap, …) as a fresh dict."""
    return json.loads(json.dumps(_payload(name)))


def load_split(name: str) -> dict[str, list[str]]:
    """Split name -> keys (image/frame/file paths relative to the dataset root)."""
    return {split: list(keys) for split, keys in _payload(name)["splits"].items()}


def split_lookup(name: str) -> dict[str, str]:
    """Key -> split name, for tagging records."""
    return {key: split for split, keys in _payload(name)["splits"].items() for key in keys}
