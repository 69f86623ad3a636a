"""Giving freed image memory back to the system once a request that decoded images is done.

Pillow frees a decoded image in blocks that glibc keeps in its per-thread arenas, so a server
whose worker threads decoded a few 64 M-pixel images would otherwise hold hundreds of MB while
idle. ``malloc_trim`` returns those free pages (a fraction of a millisecond); it exists on glibc
only, elsewhere this does nothing. No ``gc.collect``: images are freed by reference counting (and
a collection costs about half a second with transformers loaded).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Hand the allocator's free pages back to the system (glibc; a no-op elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
