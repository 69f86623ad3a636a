"""Size limits checked from headers before any pixel is decoded (decompression bombs fail early),
and budgets of decoded bytes shared by the requests of one server."""

from __future__ import annotations

import threading
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


class DecodeBudgetError(MediaError):
    """Decoding an image would pass a budget of decoded bytes.

    ``shared`` tells whose: False, the request's own budget (the request asks too much, a client
    error); True, the budget shared with other requests (busy now; the same request may pass later).
    """

    def __init__(self, source_id: str, reason: str, *, shared: bool) -> None:
        super().__init__(source_id, reason)
        self.shared = shared


class DecodeBudget:
    """Decoded pixel bytes that everyone holding an account of it may hold at once (a server's
    requests). Thread-safe: requests decode in worker threads."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"DecodeBudget.max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        with self._lock:
            return self._held

    def take(self, nbytes: int) -> bool:
        """Hold ``nbytes`` more, unless that would pass ``max_bytes`` (then nothing is held)."""
        with self._lock:
            if self._held + nbytes > self.max_bytes:
                return False
            self._held += nbytes
            return True

    def give_back(self, nbytes: int) -> None:
        with self._lock:
            self._held = max(0, self._held - nbytes)

    def account(self, max_bytes: int) -> DecodeAccount:
        """A new account of at most ``max_bytes`` drawn from this budget."""
        return DecodeAccount(max_bytes, self)


class DecodeAccount:
    """One request's decoded bytes: at most ``max_bytes``, each byte also drawn from a shared
    ``DecodeBudget`` when given. ``close`` (or leaving its ``with`` block) gives everything back;
    ``peak`` is the most it held at once."""

    def __init__(self, max_bytes: int, shared: DecodeBudget | None = None) -> None:
        if max_bytes < 1:
            raise ValueError(f"DecodeAccount.max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.shared = shared
        self.held = 0
        self.peak = 0

    def hold(self, source_id: str, nbytes: int, what: str = "decoding it") -> None:
        """Hold ``nbytes`` more; DecodeBudgetError (nothing held) when a budget would be passed."""
        if self.held + nbytes > self.max_bytes:
            raise DecodeBudgetError(
                source_id,
                f"{what} needs {_mb(nbytes)} more, past this request's budget of {_mb(self.max_bytes)} "
                f"of decoded images ({_mb(self.held)} held already)",
                shared=False,
            )
        if self.shared is not None and not self.shared.take(nbytes):
            raise DecodeBudgetError(
                source_id,
                f"{what} needs {_mb(nbytes)}, past the {_mb(self.shared.max_bytes)} that all requests "
                "may decode at once",
                shared=True,
            )
        self.held += nbytes
        self.peak = max(self.peak, self.held)

    def release(self, nbytes: int) -> None:
        nbytes = min(nbytes, self.held)
        self.held -= nbytes
        if self.shared is not None:
            self.shared.give_back(nbytes)

    def close(self) -> None:
        self.release(self.held)

    def __enter__(self) -> DecodeAccount:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mb(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):,.0f} MB"
