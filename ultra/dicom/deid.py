"""De-identification of DICOM metadata: the PS3.15 Annex E Basic Application Level
Confidentiality Profile, with the Retain Longitudinal Temporal Information (Modified Dates) option.

Identifiers are removed or replaced by keyed pseudonyms, UIDs are remapped with an HMAC so a study
stays a study across files and runs, and every date is shifted by a per-patient offset. Beyond the
table, every private tag, overlay, curve and person name is removed as defence in depth.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from pydicom import Dataset
from pydicom._uid_dict import UID_dictionary
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID

PROFILE_CODES = {
    "113100": "Basic Application Confidentiality Profile",
    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
}
CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")
MAX_DATE_SHIFT_DAYS = 3650

# PS3.15 Table E.1-1, basic profile column (X remove, Z empty, D dummy). UIDs (U) are handled by VR.
_REMOVE = frozenset(
    [
        "AccessionNumber",
        "AcquisitionComments",
        "AcquisitionDeviceProcessingDescription",
        "ActualHumanPerformersSequence",
        "AdditionalPatientHistory",
        "AdmissionID",
        "AdmittingDiagnosesCodeSequence",
        "AdmittingDiagnosesDescription",
        "Allergies",
        "Arbitrary",
        "AuthorObserverSequence",
        "BranchOfService",
        "CassetteID",
        "CommentsOnThePerformedProcedureStep",
        "ConfidentialityConstraintOnPatientDataDescription",
        "ContentCreatorIdentificationCodeSequence",
        "ContributionDescription",
        "CountryOfResidence",
        "CurrentPatientLocation",
        "CustodialOrganizationSequence",
        "DataSetTrailingPadding",
        "DerivationDescription",
        "DeviceSerialNumber",
        "DigitalSignaturesSequence",
        "DischargeDiagnosisDescription",
        "DistributionAddress",
        "DistributionName",
        "EthnicGroup",
        "FrameComments",
        "GantryID",
        "GeneratorID",
        "HumanPerformerName",
        "HumanPerformerOrganization",
        "IconImageSequence",
        "IdentifyingComments",
        "ImageComments",
        "ImagePresentationComments",
        "ImagingServiceRequestComments",
        "Impressions",
        "InstitutionAddress",
        "InstitutionCodeSequence",
        "InstitutionName",
        "InstitutionalDepartmentName",
        "InsurancePlanIdentification",
        "IntendedRecipientsOfResultsIdentificationSequence",
        "InterpretationApproverSequence",
        "InterpretationAuthor",
        "InterpretationDiagnosisDescription",
        "InterpretationIDIssuer",
        "InterpretationRecorder",
        "InterpretationText",
        "InterpretationTranscriber",
        "IssuerOfAdmissionID",
        "IssuerOfPatientID",
        "IssuerOfServiceEpisodeID",
        "MAC",
        "MedicalAlerts",
        "MedicalRecordLocator",
        "MilitaryRank",
        "ModifiedAttributesSequence",
        "ModifyingDeviceID",
        "ModifyingDeviceManufacturer",
        "NameOfPhysiciansReadingStudy",
        "NamesOfIntendedRecipientsOfResults",
        "Occupation",
        "OperatorIdentificationSequence",
        "OperatorsName",
        "OriginalAttributesSequence",
        "OrderCallbackPhoneNumber",
        "OrderEnteredBy",
        "OrderEntererLocation",
        "OtherPatientIDs",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "ParticipantSequence",
        "PatientAddress",
        "PatientAge",
        "PatientBirthName",
        "PatientBirthTime",
        "PatientComments",
        "PatientInstitutionResidence",
        "PatientInsurancePlanCodeSequence",
        "PatientMotherBirthName",
        "PatientPrimaryLanguageCodeSequence",
        "PatientPrimaryLanguageModifierCodeSequence",
        "PatientReligiousPreference",
        "PatientSize",
        "PatientState",
        "PatientTelephoneNumbers",
        "PatientTransportArrangements",
        "PatientWeight",
        "PerformedLocation",
        "PerformedProcedureStepDescription",
        "PerformedProcedureStepID",
        "PerformedStationAETitle",
        "PerformedStationGeographicLocationCodeSequence",
        "PerformedStationName",
        "PerformedStationNameCodeSequence",
        "PerformingPhysicianIdentificationSequence",
        "PerformingPhysicianName",
        "PersonAddress",
        "PersonIdentificationCodeSequence",
        "PersonName",
        "PersonTelephoneNumbers",
        "PhysicianApprovingInterpretation",
        "PhysiciansOfRecord",
        "PhysiciansOfRecordIdentificationSequence",
        "PhysiciansReadingStudyIdentificationSequence",
        "PlateID",
        "PreMedication",
        "PregnancyStatus",
        "ProtocolName",
        "ReasonForImagingServiceRequest",
        "ReasonForStudy",
        "ReferencedDigitalSignatureSequence",
        "ReferencedPatientAliasSequence",
        "ReferencedPatientSequence",
        "ReferencedPerformedProcedureStepSequence",
        "ReferencedSOPInstanceMACSequence",
        "ReferencedStudySequence",
        "ReferringPhysicianAddress",
        "ReferringPhysicianIdentificationSequence",
        "ReferringPhysicianTelephoneNumbers",
        "RegionOfResidence",
        "RequestAttributesSequence",
        "RequestedContrastAgent",
        "RequestedProcedureComments",
        "RequestedProcedureDescription",
        "RequestedProcedureID",
        "RequestedProcedureLocation",
        "RequestingPhysician",
        "RequestingService",
        "ResponsibleOrganization",
        "ResponsiblePerson",
        "ResponsiblePersonRole",
        "ResultsComments",
        "ResultsDistributionListSequence",
        "ResultsIDIssuer",
        "ScheduledHumanPerformersSequence",
        "ScheduledPatientInstitutionResidence",
        "ScheduledPerformingPhysicianIdentificationSequence",
        "ScheduledPerformingPhysicianName",
        "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepLocation",
        "ScheduledStationAETitle",
        "ScheduledStationGeographicLocationCodeSequence",
        "ScheduledStationName",
        "ScheduledStationNameCodeSequence",
        "ScheduledStudyLocation",
        "ScheduledStudyLocationAETitle",
        "SeriesDescription",
        "ServiceEpisodeDescription",
        "ServiceEpisodeID",
        "SmokingStatus",
        "SourceApplicationEntityTitle",
        "SpecialNeeds",
        "StationName",
        "StudyComments",
        "StudyDescription",
        "TextComments",
        "TextString",
        "TopicAuthor",
        "TopicKeywords",
        "TopicSubject",
        "TopicTitle",
        "VerifyingOrganization",
        "VisitComments",
        "LastMenstrualDate",
        "AdmittingDate",
        "AdmittingTime",
        "DischargeDate",
        "DischargeTime",
        "PatientSexNeutered",
        "ReferencedImageSequence",
        "SourceImageSequence",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "PerformedProcedureStepEndDate",
        "PerformedProcedureStepEndTime",
        "ReferringPhysicianName",
        "ConsultingPhysicianName",
    ]
)
_EMPTY = frozenset(["PatientBirthDate", "PatientSex", "StudyID", "ContentCreatorName"])
_PSEUDONYM = frozenset(("PatientID", "PatientName"))
_DATE_VRS = ("DA", "DT")
_STRIP_ROOT_ONLY = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass(frozen=True)
class Deidentifier:
    """Applies the profile with one HMAC key; the same key maps the same input to the same output."""

    key: bytes

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

    def deidentify(self, ds: Dataset, *, pixels_cleaned: bool = False, in_place: bool = False) -> Dataset:
        """Return a de-identified copy of ``ds`` (or ``ds`` itself, changed, when ``in_place``)."""
        out = ds if in_place else copy.deepcopy(ds)
        patient = patient_key(ds)
        offset = dt.timedelta(days=-self.date_offset_days(patient))
        pseudonym = self.pseudonym(patient)
        out.remove_private_tags()
        self._clean(out, offset, pseudonym)
        if hasattr(out, "file_meta") and out.file_meta is not None:
            meta = out.file_meta
            if "MediaStorageSOPInstanceUID" in meta:
                meta.MediaStorageSOPInstanceUID = UID(self.remap_uid(str(meta.MediaStorageSOPInstanceUID)))
            for tag in [e.tag for e in meta if e.tag.element >= 0x0016]:
                del meta[tag]  # source/sending/receiving AE titles and private meta information
        out.PatientIdentityRemoved = "YES"
        codes = dict(PROFILE_CODES)
        if pixels_cleaned:
            codes[CLEAN_PIXEL_CODE[0]] = CLEAN_PIXEL_CODE[1]
            out.BurnedInAnnotation = "NO"
        out.DeidentificationMethod = "ultra PS3.15 E basic, modified dates" + (
            ", clean pixels" if pixels_cleaned else ""
        )
        out.DeidentificationMethodCodeSequence = DicomSequence([_code_item(c, m) for c, m in codes.items()])
        out.LongitudinalTemporalInformationModified = "MODIFIED"
        return out

    def _clean(self, ds: Dataset, offset: dt.timedelta, pseudonym: str) -> None:
        for elem in list(ds):
            keyword = elem.keyword
            group = elem.tag.group
            if (
                (0x5000 <= group <= 0x50FF)
                or (0x6000 <= group <= 0x60FF and elem.tag.element in (0x3000, 0x4000))
                or keyword in _REMOVE
            ):
                del ds[elem.tag]
            elif keyword in _PSEUDONYM:
                elem.value = pseudonym
            elif keyword in _EMPTY:
                elem.value = ""
            elif elem.VR == "PN":
                del ds[elem.tag]
            elif elem.VR == "UI":
                elem.value = self._remap_uid_value(elem)
            elif elem.VR in _DATE_VRS:
                elem.value = _shift_dates(elem, offset)
            elif elem.VR == "SQ":
                for item in elem.value:
                    self._clean(item, offset, pseudonym)

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


def phi_strings(ds: Dataset) -> list[str]:
    """Identifying strings of the header, used to scrub display paths (folders named after patients)."""
    found: list[str] = []
    for keyword in ("PatientName", "PatientID", "OtherPatientIDs", "PatientBirthName", "AccessionNumber"):
        value = str(ds.get(keyword, "") or "")
        for part in [value, *value.replace("^", " ").replace("=", " ").split()]:
            part = part.strip()
            if len(part) >= (3 if part.isascii() else 2) and part not in found:
                found.append(part)
    return sorted(found, key=len, reverse=True)


def redact(path: str, secrets_: list[str]) -> str:
    """Replace every component of a relative path that holds an identifying string (any case)."""
    lowered = [secret.lower() for secret in secrets_]
    parts = path.split("/")
    return "/".join("[redacted]" if any(s in part.lower() for s in lowered) else part for part in parts)


def _is_standard_uid(value: str) -> bool:
    """A UID defined by the standard (SOP class, transfer syntax, ...), which identifies no one."""
    return value in UID_dictionary


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
