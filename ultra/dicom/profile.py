"""PS3.15 Table E.1-1 (rev2024b, ``data/confidentiality_profile_attributes.json``, provenance in
``data/SOURCE.md``) turned into one action per tag, so the de-identifier follows the standard's own
table instead of a hand-copied list.

Where the table offers a choice (``X/Z``, ``X/D``, ``X/Z/D``, ``Z/D``, ``X/Z/U*``) the rightmost
code is taken: the one that keeps the attribute present, so a written DICOM stays conformant for
Type 1 and 2 attributes, while carrying nothing of the original (an empty value, a dummy, or
remapped UIDs). With the Retain Longitudinal Temporal Information (Modified Dates) option, every
attribute whose option column says ``C`` is kept with its dates shifted (times of day are kept).
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
        )
        for row in json.loads(text)
    )


@functools.cache
def entries_by_tag() -> dict[int, ProfileEntry]:
    """Exact tags of the table (repeating groups and private tags are handled by group in deid)."""
    found: dict[int, ProfileEntry] = {}
    for entry in profile_entries():
        try:
            found[int(entry.tag, 16)] = entry
        except ValueError:  # (50XX,XXXX), (60XX,3000), (60XX,4000), private (GGGG,EEEE)
            continue
    return found
