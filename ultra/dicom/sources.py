"""What a batch reads: a folder (recursive), a text file listing paths, or a DICOMweb endpoint.

Every input is named in outputs by an id, a keyed hash of its SOURCE-relative path (see
:func:`input_id`), because folder and file names often hold a patient's name. Inputs that cannot
even be listed (dangling links, link loops, unreadable folders, pipes) are inputs too: they come
back as items with a ``problem``, so the batch accounts for every one of them.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ultra.dicom.dicomweb import is_dicomweb_url, list_instances

_SKIP_NAMES = {"DICOMDIR", ".DS_Store", "Thumbs.db"}
ID_PREFIX = "in-"


@dataclass(frozen=True)
class InputItem:
    """One input: a local ``path`` or a WADO-RS ``url``, named in outputs only by ``id``.

    ``relative`` (the path under SOURCE) stays on this machine: it is never written to OUTDIR.
    ``problem`` is set for an input found but unusable before any reading (with ``problem_status``).
    """

    id: str
    relative: str
    path: str | None = None
    url: str | None = None
    problem: str | None = None
    problem_status: Literal["skipped", "failed"] = "failed"


class SourceError(ValueError):
    """SOURCE is neither a folder, a file list, nor a DICOMweb URL."""


def input_id(relative: str, key: bytes) -> str:
    """The public name of an input: HMAC-SHA256 of its SOURCE-relative path with the de-id key."""
    return ID_PREFIX + hmac.new(key, b"input\x00" + relative.encode(), hashlib.sha256).hexdigest()[:16]


def list_inputs(source: str | Path, key: bytes) -> list[InputItem]:
    """All inputs of SOURCE in a stable order (by relative path)."""
    text = str(source)
    if is_dicomweb_url(text):
        found = list_instances(text)
        relatives = [f"dicomweb/{index:06d}" for index in range(len(found))]
        return [
            InputItem(input_id(rel, key), rel, url=item.url(text))
            for rel, item in zip(relatives, found, strict=True)
        ]
    root = Path(source)
    if root.is_dir():
        return sorted(_walk(root, key), key=lambda item: item.relative)
    if root.is_file():
        base = root.parent
        items: list[InputItem] = []
        try:
            lines = root.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read the file list SOURCE ({type(exc).__name__})") from None
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            path = Path(line) if Path(line).is_absolute() else base / line
            items.append(InputItem(input_id(line, key), line, path=str(path)))
        return items
    raise SourceError("SOURCE is not a folder, a file list or a DICOMweb URL")


def locate(wanted: str, source: str | Path, key: bytes) -> list[InputItem]:
    """The inputs of SOURCE whose id is ``wanted`` (for the operator, who holds SOURCE and the key)."""
    return [item for item in list_inputs(source, key) if item.id == wanted]


def _problem(rel: str, key: bytes, reason: str, status: Literal["skipped", "failed"]) -> InputItem:
    return InputItem(input_id(rel, key), rel, problem=reason, problem_status=status)


def _walk(root: Path, key: bytes) -> Iterator[InputItem]:
    """Every file under ``root``, following links to folders once each (a loop is reported, not
    followed), and an item with a ``problem`` for whatever cannot be listed or read."""
    listed = {os.path.realpath(root)}
    pending: list[tuple[Path, str]] = [(root, "")]
    while pending:
        folder, rel = pending.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: (e.is_symlink(), e.name))  # real folders first
        except OSError as exc:
            yield _problem(rel or ".", key, f"cannot read folder ({exc.strerror})", "failed")
            continue
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.name in _SKIP_NAMES:
                continue
            try:
                info = os.stat(entry.path)  # follows links
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    yield _problem(child, key, "symbolic link loop", "failed")
                elif entry.is_symlink():
                    yield _problem(child, key, "dangling symbolic link (target missing)", "failed")
                else:
                    yield _problem(child, key, f"cannot read entry ({exc.strerror})", "failed")
                continue
            if stat.S_ISDIR(info.st_mode):
                real = os.path.realpath(entry.path)
                if real in listed:
                    reason = "symbolic link to a folder already listed (loop or alias), not followed"
                    yield _problem(child, key, reason, "skipped")
                    continue
                listed.add(real)
                pending.append((Path(entry.path), child))
            elif stat.S_ISREG(info.st_mode):
                yield InputItem(input_id(child, key), child, path=entry.path)
            else:
                yield _problem(child, key, "not a regular file (device, pipe or socket)", "skipped")
