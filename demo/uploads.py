"""Where uploads may live: one private folder per running demo, taken apart as soon as a file is read.

Uploads may carry patient data (a DICOM named after its patient, burned-in names), so they never
sit in a shared or age-based cache. Each demo run owns ``<base>/run-XXXX`` (``base`` is
``$TMPDIR/ultra-demo-<uid>``, mode 0700, owned by this user) holding:

- ``gradio/``: Gradio's upload and cache folder (``GRADIO_TEMP_DIR``, set by ``ultra demo`` before
  Gradio is imported; Gradio 6 has no Blocks or launch argument for it);
- ``intake/``: a raw upload moved here out of Gradio's folder, checked for type and size, read once
  and deleted when the handler's ``with files.take(...)`` block ends, whether it succeeded or not;
  the page never serves this folder (``blocked_paths``);
- ``sessions/<session>/``: what the page shows (de-identified previews, heat maps), removed on
  Gradio's ``unload``.

A run holds an exclusive ``flock`` on ``run-XXXX/.lock`` while it lives; the kernel drops it when
the process dies, even by ``kill -9``, so the next start deletes every run folder whose lock it
can take: the leftovers of runs that never cleaned up.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

_SESSION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})


def parse_size(text: str) -> int:
    """Bytes in a size such as ``20mb`` (the unit Gradio's ``max_file_size`` takes)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (expected e.g. 20mb)")
    return int(match.group(1)) * _UNITS[(match.group(2) or "b").lower()]


def too_large(max_bytes: int) -> str:
    """The refusal of a file over the upload limit, in the page's language."""
    unit, scale = ("MB", 1 << 20) if max_bytes >= 1 << 20 else ("KB", 1 << 10)
    return f"文件过大：每个文件不超过 {max_bytes / scale:g} {unit}。"


@dataclass(frozen=True)
class UploadKinds:
    """What one kind of input takes: suffixes (lower case), their names for a message, a size limit."""

    suffixes: frozenset[str]
    names: str
    max_bytes: int

    @classmethod
    def images(cls, max_bytes: int) -> UploadKinds:
        return cls(IMAGE_SUFFIXES | DICOM_SUFFIXES, "PNG、JPEG、DICOM", max_bytes)

    @classmethod
    def video(cls, max_bytes: int) -> UploadKinds:
        return cls(VIDEO_SUFFIXES | IMAGE_SUFFIXES, "视频（MP4/AVI/MOV/MKV/WEBM）或 PNG、JPEG 帧", max_bytes)

    def refusal(self, path: Path) -> str | None:
        """Why ``path`` is not taken (in Chinese), or None; the file's name is never quoted."""
        suffix = path.suffix.lower()
        if suffix not in self.suffixes:
            shown = suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else "未知"
            return f"不支持的文件类型（{shown}），只接受 {self.names}"
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            return "不是普通文件"
        if info.st_size > self.max_bytes:
            return too_large(self.max_bytes)
        return None


class UploadRefused(ValueError):
    """An upload not taken; ``offset`` is its position among the files given together."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


def upload_path(upload: str | Path | dict) -> Path:
    """The path of one upload as a handler gets it: a path, or Gradio's file dict when the event
    does not preprocess (so Gradio's own checks never leave a refused file behind)."""
    return Path(upload["path"] if isinstance(upload, dict) else upload)


def default_base() -> Path:
    return Path(tempfile.gettempdir()) / f"ultra-demo-{os.getuid()}"


def _private_folder(path: Path) -> Path:
    """``path`` as a real folder of this user's with mode 0700 (another user's or a link is refused)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"{path} is not a folder owned by this user; refusing to keep uploads there")
    path.chmod(0o700)
    return path


def _locked(path: Path, blocking: bool):
    """An open file holding an exclusive lock on ``path``, or None if another process holds it."""
    handle = path.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        handle.close()
        return None
    return handle


def remove_leftovers(base: Path) -> int:
    """Delete the run folders under ``base`` that no living demo holds; how many went."""
    removed = 0
    for run in sorted(base.glob("run-*")):
        lock = run / ".lock"
        handle = _locked(lock, blocking=False) if lock.is_file() else None
        if lock.is_file() and handle is None:
            continue  # a running demo's folder
        shutil.rmtree(run, ignore_errors=True)
        if handle is not None:
            handle.close()
        removed += 1
    return removed


class SessionFiles:
    """One demo run's private folders (see the module docstring); ``close`` removes them all."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = _private_folder(Path(base) if base is not None else default_base())
        # one start at a time, so a starting run never takes another's new, not yet locked folder
        startup = _locked(self.base / ".startup.lock", blocking=True)
        try:
            self.removed_leftovers = remove_leftovers(self.base)
            self.root = Path(tempfile.mkdtemp(prefix="run-", dir=self.base))
            self._lock = _locked(self.root / ".lock", blocking=True)
        finally:
            startup.close()
        for folder in (self.gradio_cache, self.intake, self.root / "sessions"):
            folder.mkdir(mode=0o700)

    @property
    def gradio_cache(self) -> Path:
        return self.root / "gradio"

    @property
    def intake(self) -> Path:
        return self.root / "intake"

    @property
    def shown(self) -> Path:
        """What the page may serve: the sessions' previews and heat maps."""
        return self.root / "sessions"

    def gradio_environment(self) -> dict[str, str]:
        """The variables Gradio must see before it is imported: its cache here, analytics off."""
        return {"GRADIO_TEMP_DIR": str(self.gradio_cache), "GRADIO_ANALYTICS_ENABLED": "False"}

    def folder(self, session: str) -> Path:
        if not _SESSION.match(session or ""):
            raise ValueError("invalid session id")
        path = self.shown / session
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def new_file(self, session: str, suffix: str) -> Path:
        return self.folder(session) / f"{uuid.uuid4().hex}{suffix}"

    def _is_upload(self, path: Path) -> bool:
        resolved = path.resolve()
        return resolved.is_relative_to(self.gradio_cache.resolve()) and resolved != self.gradio_cache.resolve()

    @contextmanager
    def take(self, uploads: Sequence[str | Path | dict], kinds: UploadKinds) -> Iterator[list[Path]]:
        """Uploaded files moved out of Gradio's folder into ``intake`` under random names (the
        original name may name a patient), checked for type and size; all of them are deleted when
        the block ends, and all of them also when one is refused (``UploadRefused``)."""
        taken: list[Path] = []
        sources = [upload_path(upload) for upload in uploads]
        try:
            for offset, source in enumerate(sources):
                if not self._is_upload(source):
                    raise UploadRefused(offset, "不是本页上传的文件")
                target = self.intake / f"{uuid.uuid4().hex}{source.suffix.lower()}"
                try:
                    source.rename(target)
                except OSError:
                    raise UploadRefused(offset, "上传的文件已不存在，请重新上传") from None
                taken.append(target)
                _remove_empty(source.parent, self.gradio_cache)
            for offset, target in enumerate(taken):
                reason = kinds.refusal(target)
                if reason is not None:
                    raise UploadRefused(offset, reason)
            yield taken
        finally:
            for path in taken:
                path.unlink(missing_ok=True)
            for source in sources:
                if self._is_upload(source) and not source.is_dir():
                    source.unlink(missing_ok=True)
                    _remove_empty(source.parent, self.gradio_cache)

    def end_session(self, session: str) -> None:
        if _SESSION.match(session or ""):
            shutil.rmtree(self.shown / session, ignore_errors=True)

    def sessions(self) -> list[str]:
        return sorted(p.name for p in self.shown.iterdir()) if self.shown.is_dir() else []

    def remove_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self._lock.close()


def _remove_empty(folder: Path, top: Path) -> None:
    """Remove ``folder`` (Gradio's per-upload hash folder) when empty, never ``top`` itself."""
    if folder.resolve() != top.resolve():
        with suppress(OSError):
            folder.rmdir()
