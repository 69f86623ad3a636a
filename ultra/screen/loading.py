"""Find a screening student and the backbone it reads, and build a ``ReportScreener``.

A student without its trained head would give arbitrary weights that look like a verdict, so
there is no untrained fallback: a student folder is required unless one ships with the package.
"""

from __future__ import annotations

from pathlib import Path

from ultra.resources import PACKAGE_ROOT

SHIPPED_STUDENT_NAME = "ultra-tiny-zh-screener"


class NoStudentError(FileNotFoundError):
    """No student folder was given and none ships with the package."""


def shipped_student_dir() -> Path:
    """Where the trained student for ``ultra-tiny-zh`` ships (beside the model's own folder)."""
    return PACKAGE_ROOT / "weights" / SHIPPED_STUDENT_NAME


def _backbone_for(student_dir: Path):
    """The fusion the student was trained on: bundled in its folder, or a model's vision tower."""
    from screening import load_bundled_backbone, read_student_config

    bundled = load_bundled_backbone(student_dir)
    if bundled is not None:
        return bundled
    source = read_student_config(student_dir).backbone_source
    if source is None:
        raise ValueError(f"{student_dir}: student.json names no backbone_source (a model preset or folder)")
    from ultra.model import load_model

    model, _ = load_model(source)
    return model.vision_tower


def load_report_screener(student: str | Path | None = None, config=None):
    """A ``screening.ReportScreener`` from a student folder (default: the shipped one)."""
    from screening import ReportScreener, load_student

    folder = Path(student) if student is not None else shipped_student_dir()
    if student is None and not (folder / "student.json").is_file():
        raise NoStudentError(
            "no trained screening student ships with this install yet "
            f"({folder} is absent): pass --student DIR, a folder written by screening.save_student "
            "(e.g. after screening.train_on_labels)"
        )
    return ReportScreener(_backbone_for(folder), load_student(folder), config)
