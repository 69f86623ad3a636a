"""Refuse output folders that would damage the input or the outputs, before anything is written.

OUTDIR equal to, inside, or containing SOURCE would re-ingest outputs or overwrite the user's own
files; an OUTDIR that is a file or cannot be written would fail half-way through a batch.
"""

from __future__ import annotations

import os
from pathlib import Path

from ultra.dicom.dicomweb import is_dicomweb_url


class LayoutError(ValueError):
    """SOURCE and OUTDIR cannot be used together; the message is one line, without paths."""


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_layout(source: str | Path, outdir: str | Path) -> None:
    """Raise :class:`LayoutError` when OUTDIR is unsafe for SOURCE; write nothing."""
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise LayoutError("OUTDIR exists and is not a folder")
    resolved_out = out.resolve()
    if not is_dicomweb_url(str(source)):
        _check_against_source(Path(source).resolve(), resolved_out)
    existing = _nearest_existing(resolved_out)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise LayoutError("OUTDIR cannot be created or written (no write permission)")


def _check_against_source(src: Path, out: Path) -> None:
    if src.is_file():  # a file list names its inputs: only the list itself must stay outside OUTDIR
        if src.is_relative_to(out):
            raise LayoutError("OUTDIR contains the SOURCE file list: choose another output folder")
        return
    if out == src:
        raise LayoutError("OUTDIR is the SOURCE folder: choose a separate output folder")
    if out.is_relative_to(src):
        raise LayoutError("OUTDIR is inside SOURCE: its outputs would be read as inputs next time")
    if src.is_relative_to(out):
        raise LayoutError("OUTDIR contains SOURCE: choose an output folder outside the inputs")
