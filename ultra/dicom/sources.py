"""What a batch reads: a folder (recursive), a text file listing paths, or a DICOMweb endpoint.

Every input is named in outputs by an id, a keyed hash of its SOURCE-relative path (see
:func:`input_id`), because folder and file names often hold a patient's name. Inputs that cannot
even be listed (dangling links, link loops, unreadable folders, pipes) are inputs too: they come
back as items with a ``problem``, so the batch accounts for every one of them. Only regular files
are read (a pipe or ``/dev/zero`` would hang or never end), and names are bytes, not text: a name
that is not UTF-8 is an input like any other (see :func:`display_path`).
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
from ultra.media.errors import DicomReadError, MediaError
from ultra.media.limits import DEFAULT_LIMITS, MediaLimits

# Files that are never images, each skipped with its reason rather than silently.
_SKIP_NAMES = {
    "DICOMDIR": "DICOMDIR (a media directory index, not an image)",
    ".DS_Store": "system file (macOS folder settings, not an image)",
    "Thumbs.db": "system file (Windows thumbnail cache, not an image)",
}
NOT_REGULAR = "not a regular file (device, pipe or socket)"
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
    """The public name of an input: HMAC-SHA256 of its SOURCE-relative path with the de-id key.

    The path is taken as the bytes the file system holds (``os.fsencode``), so a name that is not
    UTF-8 gets an id like any other.
    """
    return ID_PREFIX + hmac.new(key, b"input\x00" + os.fsencode(relative), hashlib.sha256).hexdigest()[:16]


def display_path(relative: str) -> str:
    """A path as text that any terminal can print: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(relative).decode("utf-8", "backslashreplace")


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
        return sorted(_walk(root, key), key=lambda item: os.fsencode(item.relative))
    if root.is_file():
        return _listed(root, key)
    raise SourceError("SOURCE is not a folder, a file list or a DICOMweb URL")


def _listed(listing: Path, key: bytes) -> list[InputItem]:
    """The inputs a file list names, one per line, each checked before anything reads it.

    Lines are file-system bytes (``os.fsdecode``), so a name that is not UTF-8 is listed too. A
    file named again (the same line, or another path to the same file) is skipped with a reason
    and an id of its own, so that every line of the list has one row in ``errors.jsonl``.
    """
    try:
        lines = listing.read_bytes().splitlines()
    except OSError as exc:
        raise SourceError(f"cannot read the file list SOURCE ({exc.strerror})") from None
    items: list[InputItem] = []
    first: dict[str, str] = {}  # real path -> id of the line that named it first
    times: dict[str, int] = {}
    for raw in lines:
        line = os.fsdecode(raw.strip())
        if not line or line.startswith("#"):
            continue
        times[line] = times.get(line, 0) + 1
        # The same line again gets its own id: the path plus how many times it was named.
        named = line if times[line] == 1 else f"{line}\x00{times[line]}"
        item_id = input_id(named, key)
        path = Path(line) if Path(line).is_absolute() else listing.parent / line
        problem = _listed_problem(path)
        if problem is not None:
            items.append(InputItem(item_id, line, problem=problem[0], problem_status=problem[1]))
            continue
        real = os.path.realpath(path)
        if real in first:
            reason = f"listed again (the same file as {first[real]})"
            items.append(InputItem(item_id, line, problem=reason, problem_status="skipped"))
            continue
        first[real] = item_id
        items.append(InputItem(item_id, line, path=str(path)))
    return items


def _listed_problem(path: Path) -> tuple[str, Literal["skipped", "failed"]] | None:
    """Why a listed path cannot be read as a file, from ``stat`` alone (nothing is opened)."""
    try:
        info = os.stat(path)  # follows links
    except OSError as exc:
        if exc.errno == errno.ENOENT and path.is_symlink():
            return "dangling symbolic link (target missing)", "failed"
        if exc.errno == errno.ENOENT:
            return "listed file not found", "failed"
        if exc.errno == errno.ELOOP:
            return "symbolic link loop", "failed"
        return f"cannot read entry ({exc.strerror})", "failed"
    if stat.S_ISDIR(info.st_mode):
        return "a folder, not a file (give the folder itself as SOURCE)", "skipped"
    if not stat.S_ISREG(info.st_mode):
        return NOT_REGULAR, "skipped"
    if path.name in _SKIP_NAMES:
        return _SKIP_NAMES[path.name], "skipped"
    return None


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
            if entry.name in _SKIP_NAMES and not entry.is_dir():
                yield _problem(child, key, _SKIP_NAMES[entry.name], "skipped")
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
                yield _problem(child, key, NOT_REGULAR, "skipped")


def read_input_file(path: str, label: str, limits: MediaLimits = DEFAULT_LIMITS) -> bytes:
    """The bytes of a local input, read only once it is known to be a regular file of a size
    within ``limits`` (checked on the opened file, so a path swapped for a pipe is refused too).

    Opened non-blocking, so that a pipe named here cannot hang the worker.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise DicomReadError(label, f"cannot open file ({exc.strerror})") from None
    with os.fdopen(fd, "rb", buffering=0) as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DicomReadError(label, NOT_REGULAR)
        if info.st_size == 0:
            raise DicomReadError(label, "empty file")
        try:
            limits.check_bytes(label, info.st_size)
        except MediaError as error:
            raise DicomReadError(label, error.reason) from None
        try:
            data = handle.read(info.st_size)
        except OSError as exc:
            raise DicomReadError(label, f"cannot read file ({exc.strerror})") from None
    return data
