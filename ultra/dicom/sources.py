"""What a batch reads: a folder (recursive), a text file listing paths, or a DICOMweb endpoint.

Every input gets a display name relative to SOURCE, the only way a file is named in outputs, so
absolute paths (which often hold a patient's name) never leave the machine's own file system.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ultra.dicom.dicomweb import is_dicomweb_url, list_instances

_SKIP_NAMES = {"DICOMDIR", ".DS_Store", "Thumbs.db"}


@dataclass(frozen=True)
class InputItem:
    """One instance to process: a local ``path`` or a WADO-RS ``url``, and its display ``name``."""

    name: str
    path: str | None = None
    url: str | None = None


class SourceError(ValueError):
    """SOURCE is neither a folder, a file list, nor a DICOMweb URL."""


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def list_inputs(source: str | Path) -> list[InputItem]:
    """All inputs of SOURCE in a stable order."""
    text = str(source)
    if is_dicomweb_url(text):
        found = list_instances(text)
        return [
            InputItem(name=f"dicomweb/{index:06d}", url=item.url(text)) for index, item in enumerate(found)
        ]
    root = Path(source)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in _SKIP_NAMES)
        return [InputItem(name=_relative(p, root), path=str(p)) for p in files]
    if root.is_file():
        base = root.parent
        items: list[InputItem] = []
        for line in root.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            path = Path(line) if Path(line).is_absolute() else base / line
            items.append(InputItem(name=_relative(path, base), path=str(path)))
        return items
    raise SourceError(f"SOURCE {text!r} is not a folder, a file list or a DICOMweb URL")
