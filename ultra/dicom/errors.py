"""The one error type of the DICOM layer, so batches can catch it and keep going.

It lives in ``ultra.media`` (below both ``ultra.inference`` and ``ultra.dicom``), where DICOM files
are decoded; this module keeps the old import path.
"""

from ultra.media.errors import DicomReadError

__all__ = ["DicomReadError"]
