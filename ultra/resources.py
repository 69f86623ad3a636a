"""Where files that ship inside the package live.

Paths are computed from the installed package, so they are right for editable installs,
wheels and CI clones alike.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
EMBEDDED_MODEL_NAME = "ultra-tiny-zh"
DEFAULT_MODEL = "tiny-zh"
"""The model every surface uses when none is named: the embedded ``ultra-tiny-zh``. It lives here,
not in ``ultra.answerer``, so the CLI can show it as a default without importing torch."""


def embedded_model_dir() -> Path:
    """Folder of the embedded default model (weights, tokenizer, model card)."""
    return PACKAGE_ROOT / "weights" / EMBEDDED_MODEL_NAME


def examples_dir() -> Path:
    """Folder of the bundled example inputs (BUSI images, an ultrasound DICOM, a report)."""
    return PACKAGE_ROOT / "examples"


def user_config_dir() -> Path:
    """Per-user configuration folder (e.g. the de-identification key), outside any output."""
    import os

    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ultra"
