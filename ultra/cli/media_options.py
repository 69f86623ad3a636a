"""Options shared by the commands that read media: the pixel limit and the media-root guard."""

from __future__ import annotations

from dataclasses import replace

from ultra.media.limits import DEFAULT_LIMITS, MediaLimits

MAX_PIXELS_HELP = (
    f"Refuse an image or frame larger than this many pixels, before decoding "
    f"(default {DEFAULT_LIMITS.max_pixels:,})."
)
ALLOW_OUTSIDE_ROOT_HELP = (
    "Read record media paths that leave the media root (absolute paths, '..', a root of '/'); "
    "refused by default."
)


def media_limits(max_pixels: int | None) -> MediaLimits:
    """The reading limits of one command run: the defaults, with ``--max-pixels`` when given."""
    return DEFAULT_LIMITS if max_pixels is None else replace(DEFAULT_LIMITS, max_pixels=max_pixels)
