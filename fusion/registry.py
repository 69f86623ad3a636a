"""``Registry[T]``: the one shape of every named table in the project (encoders, fusion modes,
objectives, judges, converters, data sources, presets, QA backends).

A registry is built once from its entries and never changes afterwards, so no module holds
mutable state: a test or a plug-in that needs another entry makes its own registry with
``extended`` and passes it where the built-in one would go. An unknown name is one error that
says what kind of thing was asked for and lists what exists. It lives in ``fusion``, the lowest
package, so that every other package can reach it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownEntryError(KeyError):
    """A name no registry entry has; the message names the kind and the known names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    """Read-only named entries of one kind (``kind`` names them in errors: "encoder", ...)."""

    def __init__(self, kind: str, entries: Mapping[str, T]) -> None:
        for name in entries:
            if not isinstance(name, str) or not name:
                raise ValueError(f"{kind} registry: entry names must be non-empty strings, got {name!r}")
        self.kind = kind
        self._entries: Mapping[str, T] = MappingProxyType(dict(entries))

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownEntryError(
                f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries)) or 'none'}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"

    def names(self) -> list[str]:
        """The entry names, sorted (for help texts and error messages)."""
        return sorted(self._entries)

    def extended(self, entries: Mapping[str, T], *, replace: bool = False) -> Registry[T]:
        """A new registry with ``entries`` added; a name already taken is refused unless ``replace``."""
        taken = sorted(set(entries) & set(self._entries))
        if taken and not replace:
            raise ValueError(f"{self.kind} registry: already registered: {', '.join(taken)}")
        return Registry(self.kind, {**self._entries, **entries})
