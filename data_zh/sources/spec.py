"""What a data source is: ``DataSourceSpec`` (one registry entry) and ``SourceRef`` (an old name's meaning)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from data_zh.schema import Record

Loader = Callable[..., list[Record]]
"""``load(root, split, **options)``: ``root`` a Path (None for a source that needs none), ``split``
a committed split name or ``"all"``."""


@dataclass(frozen=True)
class DataSourceSpec:
    """One named source of records.

    ``root`` says what folder or file the source reads (None: it needs none); ``options`` are the
    keyword options its loader takes, so a caller can offer its settings and pass only those the
    source uses. ``default_split`` is the split given when none is asked (None: every record);
    ``test_split`` is the split evaluation scores as "test" (``val`` where a source has no test
    split). ``dataset`` names the images the source reads (sources of one dataset share its
    committed split); ``folder`` is the name of its files' folder in the project's shared data.
    """

    description: str
    load: Loader
    root: str | None
    options: tuple[str, ...] = ()
    default_split: str | None = None
    test_split: str = "test"
    dataset: str | None = None
    folder: str | None = None
    root_must_exist: bool = True
    writes_folder: bool = False


@dataclass(frozen=True)
class SourceRef:
    """A name a config or command has long accepted, and the registry entry it stands for, with
    the options it fixes and the split it means when none is given."""

    source: str
    options: Mapping[str, Any] = field(default_factory=dict)
    default_split: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))  # read-only, like the registry
