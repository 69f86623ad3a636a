"""PS3.15 Table E.1-1 (rev2024b, ``data/confidentiality_profile_attributes.json``, provenance in
``data/SOURCE.md``) turned into one action per tag, so the de-identifier follows the standard's own
table instead of a hand-copied list.

Where the table offers a choice (``X/Z``, ``X/D``, ``X/Z/D``, ``Z/D``, ``X/Z/U*``) the rightmost
code is taken: the one that keeps the attribute present, so a written DICOM stays conformant for
Type 1 and 2 attributes, while carrying nothing of the original (an empty value, a dummy, or
remapped UIDs). With the Retain Longitudinal Temporal Information (Modified Dates) option, every
attribute whose option column says ``C`` is kept with its dates shifted (times of day are kept).

The table leaves out the attributes that name the equipment (Manufacturer, model, software
versions, transducer): :data:`DEVICE_ATTRIBUTES` adds them, so the basic profile removes them (or
empties the Type 2 Manufacturer) and only the Retain Device Identity Option keeps them, together
with the table's rows whose option column says ``K``. Rows where it says ``C`` (AE titles) take the
basic action: cleaning them is not implemented, removing is the safe side.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources

TABLE_FILE = "confidentiality_profile_attributes.json"


class Action(StrEnum):
    REMOVE = "X"
    EMPTY = "Z"
    DUMMY = "D"
    REPLACE_UID = "U"
    CLEAN_UIDS_IN_ITEMS = "U*"  # keep a sequence, remap the UIDs (and clean the rest) of its items
    KEEP = "K"


@dataclass(frozen=True)
class ProfileEntry:
    """One row of Table E.1-1: the tag (or a repeating-group pattern) and the action taken."""

    tag: str
    name: str
    basic_code: str
    action: Action
    shift_dates: bool  # the modified-dates option column says C: a DA/DT value is shifted, a TM kept
    device_identity: bool = False  # kept under the Retain Device Identity Option


# Equipment attributes the table does not list: (tag, name, basic-profile code).
DEVICE_ATTRIBUTES: tuple[tuple[str, str, str], ...] = (
    ("00080070", "Manufacturer", "Z"),  # Type 2 in General Equipment: present, empty
    ("00081090", "Manufacturer's Model Name", "X"),
    ("00181020", "Software Versions", "X"),
    ("00185010", "Transducer Data", "X"),
    ("00181010", "Secondary Capture Device ID", "X"),
    ("00181016", "Secondary Capture Device Manufacturer", "X"),
    ("00181018", "Secondary Capture Device Manufacturer's Model Name", "X"),
    ("00181019", "Secondary Capture Device Software Versions", "X"),
    ("00181017", "Hardcopy Device Manufacturer", "X"),
    ("0018101a", "Hardcopy Device Software Version", "X"),
    ("0018101b", "Hardcopy Device Manufacturer's Model Name", "X"),
)
# IODs with the Enhanced General Equipment module, where Manufacturer, model and software versions
# are Type 1: there they get a dummy instead (the enhanced CT/MR/US/XA/XRF/PET families, their legacy
# converted forms, MR spectroscopy, breast tomosynthesis and projection, 3D X-ray, ophthalmic and
# intravascular OCT, parametric maps, photoacoustic).
ENHANCED_EQUIPMENT_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.2.1",
        "1.2.840.10008.5.1.4.1.1.2.2",
        "1.2.840.10008.5.1.4.1.1.4.1",
        "1.2.840.10008.5.1.4.1.1.4.2",
        "1.2.840.10008.5.1.4.1.1.4.3",
        "1.2.840.10008.5.1.4.1.1.4.4",
        "1.2.840.10008.5.1.4.1.1.6.2",
        "1.2.840.10008.5.1.4.1.1.6.3",
        "1.2.840.10008.5.1.4.1.1.12.1.1",
        "1.2.840.10008.5.1.4.1.1.12.2.1",
        "1.2.840.10008.5.1.4.1.1.13.1.1",
        "1.2.840.10008.5.1.4.1.1.13.1.2",
        "1.2.840.10008.5.1.4.1.1.13.1.3",
        "1.2.840.10008.5.1.4.1.1.13.1.4",
        "1.2.840.10008.5.1.4.1.1.13.1.5",
        "1.2.840.10008.5.1.4.1.1.14.1",
        "1.2.840.10008.5.1.4.1.1.14.2",
        "1.2.840.10008.5.1.4.1.1.30",
        "1.2.840.10008.5.1.4.1.1.77.1.5.4",
        "1.2.840.10008.5.1.4.1.1.128.1",
        "1.2.840.10008.5.1.4.1.1.130",
    }
)
ENHANCED_EQUIPMENT_TYPE1 = ("Manufacturer", "ManufacturerModelName", "SoftwareVersions")


def choose_action(basic_code: str) -> Action:
    """The basic-profile action of one row: the rightmost code of a choice such as ``X/Z/D``."""
    return Action(basic_code.split("/")[-1].strip())


@functools.cache
def profile_entries() -> tuple[ProfileEntry, ...]:
    """Every row of the table, read once per process from the package data."""
    text = resources.files("ultra.dicom").joinpath("data", TABLE_FILE).read_text(encoding="utf-8")
    return tuple(
        ProfileEntry(
            tag=row["id"],
            name=row["name"],
            basic_code=row["basicProfile"],
            action=choose_action(row["basicProfile"]),
            shift_dates=row.get("rtnLongModifDatesOpt") == "C",
            device_identity=row.get("rtnDevIdOpt") == "K",
        )
        for row in json.loads(text)
    )


def device_entries() -> tuple[ProfileEntry, ...]:
    """:data:`DEVICE_ATTRIBUTES` as profile rows, all kept under the Retain Device Identity Option."""
    return tuple(
        ProfileEntry(tag, name, code, choose_action(code), shift_dates=False, device_identity=True)
        for tag, name, code in DEVICE_ATTRIBUTES
    )


@functools.cache
def entries_by_tag() -> dict[int, ProfileEntry]:
    """Exact tags of the table and :data:`DEVICE_ATTRIBUTES` (repeating groups and private tags are
    handled by group in deid)."""
    found: dict[int, ProfileEntry] = {}
    for entry in device_entries() + profile_entries():  # a table row wins over an added one
        try:
            found[int(entry.tag, 16)] = entry
        except ValueError:  # (50XX,XXXX), (60XX,3000), (60XX,4000), private (GGGG,EEEE)
            continue
    return found
