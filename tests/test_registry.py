"""``Registry[T]``: read-only after construction, one error shape for unknown names, copies for
plug-ins (the built-in registry never changes)."""

from __future__ import annotations

import pytest

from fusion.registry import Registry, UnknownEntryError


def test_unknown_name_names_the_kind_and_the_known_entries():
    colours = Registry("colour", {"red": 1, "blue": 2})
    with pytest.raises(UnknownEntryError) as raised:
        colours["green"]
    assert str(raised.value) == "unknown colour 'green'; known: blue, red"
    assert isinstance(raised.value, KeyError)


def test_a_registry_cannot_be_changed_after_construction():
    entries = {"red": 1}
    colours = Registry("colour", entries)
    entries["blue"] = 2
    assert list(colours) == ["red"]
    with pytest.raises(TypeError):
        colours._entries["blue"] = 2  # the mapping itself is read-only


def test_extended_returns_a_new_registry_and_refuses_taken_names():
    colours = Registry("colour", {"red": 1})
    more = colours.extended({"blue": 2})
    assert more.names() == ["blue", "red"] and colours.names() == ["red"]
    with pytest.raises(ValueError, match="already registered: red"):
        colours.extended({"red": 3})
    assert colours.extended({"red": 3}, replace=True)["red"] == 3


def test_entry_names_must_be_strings():
    with pytest.raises(ValueError, match="non-empty strings"):
        Registry("colour", {"": 1})
