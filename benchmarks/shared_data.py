"""Where the benchmarks find the project's shared data (``ULTRA_SHARED_DATA``, else
``../shared/data`` beside the checkout), and a clear exit when it is absent."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_us_folder() -> Path:
    """The shared ultrasound DICOM files; the benchmark ends with one line when they are absent."""
    root = Path(os.environ.get("ULTRA_SHARED_DATA", REPO.parent / "shared" / "data"))
    folder = root / "dicom" / "us"
    if not folder.is_dir():
        sys.exit(f"shared DICOM data not found at {folder} (set ULTRA_SHARED_DATA)")
    return folder
