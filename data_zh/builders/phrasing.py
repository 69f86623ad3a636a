"""Deterministic choice among several phrasings, so instruction data is varied yet reproducible."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def pick(options: Sequence[str], *keys: object) -> str:
    """One option chosen by a stable hash of the keys (same keys -> same phrasing on every run)."""
    digest = hashlib.sha256("\x1f".join(str(key) for key in keys).encode("utf-8")).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def pick_distinct(options: Sequence[str], count: int, *keys: object) -> list[str]:
    """``count`` different options (all of them if fewer) in a stable, key-dependent order;
    the first is always ``pick(options, *keys)``."""
    first = options.index(pick(options, *keys))
    rest = sorted(
        (option for i, option in enumerate(options) if i != first),
        key=lambda option: hashlib.sha256("\x1f".join(map(str, (*keys, option))).encode("utf-8")).digest(),
    )
    return [options[first], *rest][: max(1, count)]
