"""De-identification of DICOM metadata: the PS3.15 Annex E Basic Application Level
Confidentiality Profile, with the Retain Longitudinal Temporal Information (Modified Dates) option.

Every attribute of PS3.15 Table E.1-1 gets the action :mod:`ultra.dicom.profile` reads from the
standard's table, through sequences at any depth. Patient name and ID become keyed pseudonyms, UIDs
are remapped with an HMAC so a study stays a study across files and runs, and every date is shifted
by a per-patient offset. Beyond the table, every private tag, overlay (60xx), curve (50xx), content
item text, person name, group length and even tag the data dictionary does not know is removed as
defence in depth, unless its tag is on an explicit keep-list. A UID that a row replaces (``U`` or a
dummy ``D``) becomes a keyed 2.25 UID, so every UI element stays a valid UID. The equipment
(Manufacturer, model, serial numbers, software) is kept only under the Retain Device Identity Option.
The 128-byte preamble (which may hold a TIFF header or anything else) is written afresh as zeros,
and the file meta names the writer (pydicom), not the source's implementation.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from pydicom import Dataset
from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import dictionary_has_tag, repeater_has_tag
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID
from pydicom.valuerep import STR_VR

from ultra.dicom.profile import (
    ENHANCED_EQUIPMENT_SOP_CLASSES,
    ENHANCED_EQUIPMENT_TYPE1,
    Action,
    ProfileEntry,
    entries_by_tag,
)

PROFILE_CODES = {
    "113100": "Basic Application Confidentiality Profile",
    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
}
CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")
DEVICE_IDENTITY_CODE = ("113109", "Retain Device Identity Option")
PREAMBLE = b"\x00" * 128
MAX_DATE_SHIFT_DAYS = 3650

_PSEUDONYM = frozenset(("PatientID", "PatientName"))
_DATE_VRS = ("DA", "DT")
# Beyond the table: the free text of structured-report content items, wherever a sequence keeps them.
_ALSO_REMOVED = frozenset({0x0040A160})  # (0040,A160) Text Value
# Type 2 where image IODs hold it: a choice that allows removal still leaves it present, empty.
_TYPE2_SEQUENCES = frozenset({0x00400555})  # (0040,0555) Acquisition Context Sequence
_DUMMY_BY_VR: dict[str, object] = {
    "PN": "ANONYMOUS",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
    "UR": "urn:anonymized",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "SV": 0,
    "UV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "AT": 0,
    "OB": b"\x00\x00",
    "OW": b"\x00\x00",
    "OF": b"\x00" * 4,
    "OL": b"\x00" * 4,
    "OD": b"\x00" * 8,
    "OV": b"\x00" * 8,
    "UN": b"\x00\x00",
}
_DUMMY_TEXT = "ANONYMIZED"


@dataclass(frozen=True)
class Deidentifier:
    """Applies the profile with one HMAC key; the same key maps the same input to the same output.

    ``retain_device_identity`` is PS3.15's Retain Device Identity Option: the equipment attributes
    (the table's rows marked ``K`` for it, Manufacturer, model, software versions) are kept as read.
    """

    key: bytes
    keep: frozenset[int] = frozenset()  # private, overlay or curve tags the caller chose to keep
    retain_device_identity: bool = False

    def _digest(self, purpose: str, value: str) -> bytes:
        return hmac.new(self.key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()

    def remap_uid(self, uid: str) -> str:
        """A 2.25 (UUID-derived) UID, stable for a given key and input UID."""
        return "2.25." + str(int.from_bytes(self._digest("uid", uid)[:16], "big"))

    def pseudonym(self, patient_key: str) -> str:
        return "ANON-" + self._digest("patient", patient_key).hex()[:12].upper()

    def date_offset_days(self, patient_key: str) -> int:
        """Days every date of this patient moves back (1..MAX_DATE_SHIFT_DAYS), same across runs."""
        return 1 + int.from_bytes(self._digest("date", patient_key)[:4], "big") % MAX_DATE_SHIFT_DAYS

    def deidentify(
        self, ds: Dataset, *, pixels_cleaned: bool = False, pixel_note: str = "", in_place: bool = False
    ) -> Dataset:
        """Return a de-identified copy of ``ds`` (or ``ds`` itself, changed, when ``in_place``).

        ``pixels_cleaned`` says burned-in text was masked in every frame written with this header;
        ``pixel_note`` (how: OCR boxes, regions) goes into Deidentification Method.
        """
        out = ds if in_place else copy.deepcopy(ds)
        patient = patient_key(ds)
        offset = dt.timedelta(days=-self.date_offset_days(patient))
        pseudonym = self.pseudonym(patient)
        enhanced = str(ds.get("SOPClassUID", "")) in ENHANCED_EQUIPMENT_SOP_CLASSES
        type1 = [k for k in ENHANCED_EQUIPMENT_TYPE1 if enhanced and ds.get(k)]
        self._clean(out, offset, pseudonym)
        for keyword in type1:
            if not out.get(keyword):
                setattr(out, keyword, _DUMMY_TEXT)
        out.preamble = PREAMBLE
        if hasattr(out, "file_meta") and out.file_meta is not None:
            meta = out.file_meta
            if "MediaStorageSOPInstanceUID" in meta:
                meta.MediaStorageSOPInstanceUID = UID(self.remap_uid(str(meta.MediaStorageSOPInstanceUID)))
            for tag in [e.tag for e in meta if e.tag.element >= 0x0013]:
                del meta[tag]  # the source's version name, AE titles and private meta information
            meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        out.PatientIdentityRemoved = "YES"
        codes = dict(PROFILE_CODES)
        if self.retain_device_identity:
            codes[DEVICE_IDENTITY_CODE[0]] = DEVICE_IDENTITY_CODE[1]
        if pixels_cleaned:
            codes[CLEAN_PIXEL_CODE[0]] = CLEAN_PIXEL_CODE[1]
            out.BurnedInAnnotation = "NO"
        method = ["ultra PS3.15 E basic, modified dates" + (", device id" if self.retain_device_identity else "")]
        if pixels_cleaned:  # LO is 64 characters a value, so the pixel note is a second value
            method.append(("clean pixels: " + pixel_note) if pixel_note else "clean pixels")
        out.DeidentificationMethod = method if len(method) > 1 else method[0]
        out.DeidentificationMethodCodeSequence = DicomSequence([_code_item(c, m) for c, m in codes.items()])
        out.LongitudinalTemporalInformationModified = "MODIFIED"
        return out

    def _clean(self, ds: Dataset, offset: dt.timedelta, pseudonym: str) -> None:
        table = entries_by_tag()
        for elem in list(ds):
            tag = int(elem.tag)
            if tag in self.keep:
                continue
            group = elem.tag.group
            if elem.tag.is_private or 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
                del ds[elem.tag]
            elif elem.tag.element == 0 or not (dictionary_has_tag(tag) or repeater_has_tag(tag)):
                del ds[elem.tag]  # a stale group length, or an even tag no one can say the meaning of
            elif elem.keyword in _PSEUDONYM:
                elem.value = pseudonym
            elif tag in table and self.retain_device_identity and table[tag].device_identity:
                if elem.VR == "SQ":
                    for item in elem.value:
                        self._clean(item, offset, pseudonym)
            elif tag in table:
                self._apply(ds, elem, table[tag], offset, pseudonym)
            elif tag in _ALSO_REMOVED or elem.VR == "PN":
                del ds[elem.tag]
            elif elem.VR == "UI":
                elem.value = self._remap_uid_value(elem)
            elif elem.VR in _DATE_VRS:
                elem.value = _shift_dates(elem, offset)
            elif elem.VR == "SQ":
                for item in elem.value:
                    self._clean(item, offset, pseudonym)

    def _apply(
        self, ds: Dataset, elem: DataElement, entry: ProfileEntry, offset: dt.timedelta, pseudonym: str
    ) -> None:
        """One table row's action on one element (see :mod:`ultra.dicom.profile` for the choice)."""
        if entry.shift_dates and elem.VR in _DATE_VRS:
            elem.value = _shift_dates(elem, offset)
            return
        if entry.shift_dates and elem.VR == "TM":
            return  # whole-day shifts keep the time of day
        action = entry.action
        if elem.VR == "SQ" and action in (Action.EMPTY, Action.DUMMY) and "X" in entry.basic_code.split("/"):
            # Image IODs hold these sequences as Type 3, where an empty sequence or item is invalid.
            action = Action.EMPTY if int(elem.tag) in _TYPE2_SEQUENCES else Action.REMOVE
        if action is Action.REMOVE:
            del ds[elem.tag]
        elif action is Action.EMPTY:
            elem.value = DicomSequence([]) if elem.VR == "SQ" else "" if elem.VR in STR_VR else None
        elif action in (Action.DUMMY, Action.REPLACE_UID) and elem.VR == "UI":
            elem.value = self._remap_uid_value(elem)  # a dummy UID must still be a UID
        elif action is Action.DUMMY:
            elem.value = _dummy(elem.VR)
        elif action in (Action.CLEAN_UIDS_IN_ITEMS, Action.KEEP) and elem.VR == "SQ":
            for item in elem.value:
                self._clean(item, offset, pseudonym)
        elif action is not Action.KEEP:  # a UID action on a non-UID element: nothing to remap, remove
            del ds[elem.tag]

    def _remap_uid_value(self, elem: DataElement) -> object:
        values = elem.value if elem.VM > 1 else [elem.value]
        mapped = [v if not v or _is_standard_uid(str(v)) else self.remap_uid(str(v)) for v in values]
        return mapped if elem.VM > 1 else mapped[0]


def patient_key(ds: Dataset) -> str:
    """What identifies the patient for pseudonyms and date offsets (ID, else name + birth date)."""
    pid = str(ds.get("PatientID", "") or "").strip()
    if pid:
        return "id:" + pid
    name = str(ds.get("PatientName", "") or "").strip()
    birth = str(ds.get("PatientBirthDate", "") or "").strip()
    if name or birth:
        return f"name:{name}|{birth}"
    return "study:" + str(ds.get("StudyInstanceUID", ""))


def _is_standard_uid(value: str) -> bool:
    """A UID defined by the standard (SOP class, transfer syntax, ...), which identifies no one."""
    return value in UID_dictionary


def _dummy(vr: str) -> object:
    """A value that is valid for the VR and says nothing (a sequence gets one empty item)."""
    if vr == "SQ":
        return DicomSequence([Dataset()])
    return _DUMMY_BY_VR.get(vr, _DUMMY_TEXT)


def _code_item(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def _shift_one(value: str, vr: str, offset: dt.timedelta) -> str:
    text = value.strip()
    if len(text) < 8 or not text[:8].isdigit():
        return ""
    try:
        day = dt.datetime.strptime(text[:8], "%Y%m%d").date() + offset
    except ValueError:
        return ""
    return day.strftime("%Y%m%d") + (text[8:] if vr == "DT" else "")


def _shift_dates(elem: DataElement, offset: dt.timedelta) -> object:
    values = elem.value if elem.VM > 1 else [elem.value]
    shifted = [_shift_one(str(v or ""), elem.VR, offset) for v in values]
    return shifted if elem.VM > 1 else shifted[0]
