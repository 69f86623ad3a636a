"""Size limits checked from headers before any pixel is decoded (decompression bombs fail early)."""

from __future__ import annotations

from dataclasses import dataclass

from ultra.media.errors import MediaError


@dataclass(frozen=True)
class MediaLimits:
    """How much one input may decode to; passed in by the caller, never a global setting.

    ``max_pixels`` bounds one image or one frame (width x height); ``max_total_pixels`` bounds
    everything one input decodes to (a DICOM's rows x columns x frames, a video's frames x size);
    ``max_bytes`` bounds encoded data read whole into memory (a DICOM file, a ``data:`` URL).
    """

    max_pixels: int = 64_000_000
    max_total_pixels: int = 1_000_000_000
    max_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_total_pixels", "max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"MediaLimits.{name} must be positive, got {getattr(self, name)}")

    def check_image(self, source_id: str, width: int, height: int) -> None:
        """Raise MediaError when one image or frame is larger than ``max_pixels``."""
        if width * height > self.max_pixels:
            raise MediaError(
                source_id,
                f"image of {width}x{height} = {width * height:,} pixels exceeds the limit of "
                f"{self.max_pixels:,} pixels (not decoded)",
            )

    def check_total(self, source_id: str, frames: int, width: int, height: int, what: str) -> None:
        """Raise MediaError when ``frames`` frames of ``width x height`` exceed ``max_total_pixels``."""
        self.check_image(source_id, width, height)
        total = frames * width * height
        if total > self.max_total_pixels:
            raise MediaError(
                source_id,
                f"{what} of {frames} frames x {width}x{height} = {total:,} pixels exceeds the limit of "
                f"{self.max_total_pixels:,} pixels (not decoded)",
            )

    def check_bytes(self, source_id: str, size: int) -> None:
        """Raise MediaError when encoded data to be read whole is larger than ``max_bytes``."""
        if size > self.max_bytes:
            raise MediaError(source_id, f"{size:,} bytes exceed the limit of {self.max_bytes:,} bytes")


DEFAULT_LIMITS = MediaLimits()
