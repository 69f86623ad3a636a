"""The de-identification secret: an HMAC key kept outside the outputs.

A salt stored beside the outputs would let anyone brute-force short patient IDs back out of the
pseudonyms, so the key lives in a file the user controls (default: the user's config folder, mode 600).
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from ultra.resources import user_config_dir

logger = logging.getLogger(__name__)

DEFAULT_KEY_NAME = "deid.key"


class DeidKeyError(ValueError):
    """The key file is unusable (unreadable, too short, or inside the output folder)."""


def default_key_path() -> Path:
    """Where the key is created on first use when ``--deid-key`` is not given."""
    return user_config_dir() / DEFAULT_KEY_NAME


def load_or_create_key(path: str | Path | None = None, outdir: str | Path | None = None) -> bytes:
    """Read the HMAC key from ``path`` (default location created on first use with mode 600)."""
    key_path = Path(path) if path is not None else default_key_path()
    if outdir is not None:
        resolved_out = Path(outdir).resolve()
        if key_path.resolve().is_relative_to(resolved_out):
            raise DeidKeyError(f"the de-identification key {key_path} must be kept outside OUTDIR")
    if not key_path.exists():
        if path is not None:
            raise DeidKeyError(f"de-identification key file {key_path} does not exist")
        key_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        logger.info("created a new de-identification key at %s (mode 600); keep it safe", key_path)
    try:
        raw = key_path.read_bytes().strip()
    except OSError as exc:
        raise DeidKeyError(f"cannot read de-identification key {key_path}: {exc.strerror}") from None
    if len(raw) < 16:
        raise DeidKeyError(f"de-identification key {key_path} is too short (need at least 16 bytes)")
    return raw
