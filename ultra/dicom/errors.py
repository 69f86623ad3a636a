"""The one error type of the DICOM layer, so batches can catch it and keep going, and the rule
that its reasons never carry a header value into ``errors.jsonl`` or ``run.log``.

The type lives in ``ultra.media`` (below ``ultra.dicom``), where DICOM files are decoded; it is
re-exported here so the DICOM layer catches its one error type from its own package.
"""

from __future__ import annotations

from pydicom import Dataset
from pydicom.uid import UID

from ultra.media.errors import DicomReadError

__all__ = ["DicomReadError", "without_header_values"]

_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
# Shorter values ("US", "1", "RGB") say nothing about a patient and would garble any reason.
_MIN_LENGTH = 4
HIDDEN = "<header value>"


def without_header_values(reason: str, ds: Dataset | None) -> str:
    """``reason`` with every text value of ``ds`` (file meta and nested sequences included) replaced
    by ``<header value>``: a decoder's message may quote any element, a patient's name among them.

    UIDs that DICOM itself defines (transfer syntaxes, SOP classes) stay: they name no one.
    """
    if ds is None:
        return reason
    for value in sorted(_text_values(ds), key=len, reverse=True):
        reason = reason.replace(value, HIDDEN)
    return reason


def _text_values(ds: Dataset) -> set[str]:
    found: set[str] = set()
    meta = getattr(ds, "file_meta", None)
    for dataset in (meta, ds) if meta is not None else (ds,):
        for elem in dataset.iterall():
            if elem.VR not in _TEXT_VRS or elem.value is None:
                continue
            values = elem.value if elem.VM > 1 else [elem.value]
            for value in values:
                text = str(value).strip()
                if len(text) < _MIN_LENGTH:
                    continue
                if elem.VR == "UI" and UID(text).is_valid and UID(text).name != text:
                    continue  # a UID of the standard's own dictionary
                found.add(text)
    return found
