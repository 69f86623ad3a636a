"""A private folder for each browser session's files, removed when the session ends.

Uploads may carry patient data, so they are not left to an age-based cache: the demo's root is a
``mkdtemp`` folder (mode 0700) that also holds Gradio's own cache (``GRADIO_TEMP_DIR``); each
session's uploads are moved into ``root/sessions/<session>`` as soon as they are read and the
folder is removed on Gradio's ``unload``; the root goes when the demo stops.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from pathlib import Path

_SESSION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class SessionFiles:
    """Per-session folders under one private root."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="ultra-demo-"))
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)

    @property
    def gradio_cache(self) -> Path:
        return self.root / "gradio"

    def folder(self, session: str) -> Path:
        if not _SESSION.match(session or ""):
            raise ValueError("invalid session id")
        path = self.root / "sessions" / session
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def adopt(self, session: str, upload: str | Path) -> Path:
        """Move an uploaded file out of Gradio's cache into the session's folder, renamed (its
        original name may name a patient)."""
        source = Path(upload)
        target = self.folder(session) / f"upload-{uuid.uuid4().hex}{source.suffix.lower()}"
        shutil.move(str(source), target)
        return target

    def gradio_environment(self) -> dict[str, str]:
        """The variables Gradio must see before it is imported: its cache here, analytics off."""
        return {"GRADIO_TEMP_DIR": str(self.gradio_cache), "GRADIO_ANALYTICS_ENABLED": "False"}

    def new_file(self, session: str, suffix: str) -> Path:
        return self.folder(session) / f"{uuid.uuid4().hex}{suffix}"

    def end_session(self, session: str) -> None:
        if _SESSION.match(session or ""):
            shutil.rmtree(self.root / "sessions" / session, ignore_errors=True)

    def sessions(self) -> list[str]:
        base = self.root / "sessions"
        return sorted(p.name for p in base.iterdir()) if base.is_dir() else []

    def remove_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
