"""The one progress bar of every long loop (training steps, answers, conversions, DICOM files,
video frames): tqdm on stderr with the count, the rate and the time left.

It is quiet when stderr is not a terminal (log files, pipes, CI: no carriage-return litter) and
when the caller turns it off (``enabled=False``: tests, library use, ``--no-progress``). A quiet
bar still iterates and accepts ``update``/``set_postfix``, so callers never branch on it. It
lives in ``fusion``, the lowest package, so every package above can use the same one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")

__all__ = ["progress_bar"]


def progress_bar(
    items: Iterable[T] | None = None,
    *,
    description: str = "",
    total: float | None = None,
    unit: str = "item",
    initial: int = 0,
    enabled: bool = True,
    leave: bool = True,
    file: TextIO | None = None,
) -> tqdm:
    """A bar over ``items`` (iterate it), or a manual one (``total`` and ``update(n)``).

    ``unit`` names what is counted (``"file"`` shows files/s); ``initial`` counts work done
    before a resume; ``leave=False`` clears the bar when it ends; ``file`` defaults to stderr."""
    return tqdm(
        items,
        desc=description or None,
        total=total,
        unit=unit,
        initial=initial,
        disable=None if enabled else True,
        leave=leave,
        file=file,
        dynamic_ncols=True,
    )
