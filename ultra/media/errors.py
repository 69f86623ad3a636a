"""The one error type of media reading, so every caller catches one thing and prints one line."""

from __future__ import annotations


class MediaError(ValueError):
    """An input that cannot be read; the message is ``"<source id>: <reason>"`` on one line.

    ``source_id`` is chosen by the caller (default: the path as given, ``"bytes"`` or ``"data URL"``),
    so a caller that must not show a path (a patient's name in a folder) passes its own id;
    ``reason`` is the bare reason, safe to log.
    """

    def __init__(self, source_id: str, reason: str) -> None:
        reason = " ".join(str(reason).split())
        super().__init__(f"{source_id}: {reason}")
        self.source_id = source_id
        self.reason = reason


class DicomReadError(MediaError):
    """A DICOM input that cannot be used (batches catch it per file and keep going).

    ``name`` is the display name given by the caller (a path relative to the batch source, never an
    absolute path that may hold a patient's name).
    """

    @property
    def name(self) -> str:
        return self.source_id
