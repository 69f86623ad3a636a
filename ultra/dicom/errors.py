"""The one error type of the DICOM layer, so batches can catch it and keep going."""

from __future__ import annotations


class DicomReadError(Exception):
    """A DICOM input that cannot be used; the message names the file and the reason.

    ``name`` is the display name given by the caller (a path relative to the batch source, never an
    absolute path that may hold a patient's name); ``reason`` is the bare reason, safe to log.
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason
