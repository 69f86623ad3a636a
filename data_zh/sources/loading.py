"""The one front door from a source's name to its records: ``load_records``.

Training, evaluation, self-training and ``ultra data`` all turn a named source into records here,
so a name means one thing everywhere and a new dataset is one registry entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from data_zh.converters.base import ConversionError
from data_zh.schema import Record
from data_zh.sources.entries import SOURCES
from data_zh.sources.spec import DataSourceSpec, SourceRef
from fusion.registry import Registry


def resolve_source(name: str, sources: Registry[DataSourceSpec], aliases: Mapping[str, SourceRef]) -> SourceRef:
    """The registry entry ``name`` stands for: an alias of the caller's vocabulary, else the entry
    itself (an unknown name raises the registry's error listing the known ones)."""
    if name in aliases:
        return aliases[name]
    sources[name]  # raises UnknownEntryError naming the known sources
    return SourceRef(name)


def load_records(
    name: str,
    root: str | Path | None = None,
    *,
    split: str | None = None,
    sources: Registry[DataSourceSpec] | None = None,
    **options: Any,
) -> list[Record]:
    """Records of one split (``"all"``: every record; None: the source's default) of the source
    ``name`` read from ``root``; ``options`` go to its loader and must be ones it takes."""
    spec = (SOURCES if sources is None else sources)[name]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        takes = ", ".join(spec.options) or "none"
        raise ValueError(f"{name}: unknown option(s) {', '.join(unknown)} (it takes: {takes})")
    path: Path | None = None
    if spec.root is not None:
        if root is None or str(root) == "":
            raise ValueError(f"{name}: pass {spec.root} as root")
        path = Path(root)
        if spec.root_must_exist and not path.exists():
            raise ConversionError(f"{path}: not found ({name} reads {spec.root})")
    return spec.load(path, split or spec.default_split or "all", **options)
