"""Options shared by the commands that read media: the pixel limit and the media-root guard.

``ultra.media`` is imported only when a command runs, so ``ultra --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ultra.media import MediaLimits

MAX_PIXELS_HELP = (
    "Refuse an image or frame larger than this many pixels (width x height), before decoding "
    "(default: ultra.media.MediaLimits.max_pixels, 64 million)."
)
ALLOW_OUTSIDE_ROOT_HELP = (
    "Read record media paths that leave the media root (absolute paths, '..', a root of '/'); "
    "refused by default."
)


def media_limits(max_pixels: int | None) -> MediaLimits:
    """The reading limits of one command run: the defaults, with ``--max-pixels`` when given."""
    from dataclasses import replace

    from ultra.media import DEFAULT_LIMITS

    return DEFAULT_LIMITS if max_pixels is None else replace(DEFAULT_LIMITS, max_pixels=max_pixels)
