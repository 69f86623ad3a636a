"""Save and load a student as ``student.json`` + ``student.safetensors`` (never its backbone's weights,
unless asked to bundle a backbone that exists nowhere else, e.g. a random-init test backbone)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from safetensors.torch import load_model, save_model

from fusion import VisionFusion, load_fusion, save_fusion
from screening.backbone import backbone_fingerprint
from screening.student import ScreeningStudent, StudentConfig

logger = logging.getLogger(__name__)

CONFIG_NAME = "student.json"
WEIGHTS_NAME = "student.safetensors"
BUNDLED_BACKBONE = "backbone"


class BackboneMismatchError(ValueError):
    """A student was paired with a backbone other than the one it was trained on."""


def save_student(
    student: ScreeningStudent, directory: str | Path, bundle: VisionFusion | None = None
) -> Path:
    """Write config and weights; with ``bundle``, also that fusion under ``backbone/`` (and the
    config then points at it)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    config = student.config
    if bundle is not None:
        save_fusion(bundle, folder / BUNDLED_BACKBONE)
        config = config.model_copy(
            update={"backbone_source": BUNDLED_BACKBONE, "backbone_fingerprint": backbone_fingerprint(bundle)}
        )
    (folder / CONFIG_NAME).write_text(config.model_dump_json(indent=2), encoding="utf-8")
    save_model(student, str(folder / WEIGHTS_NAME))
    logger.info("saved screening student to %s", folder)
    return folder


def read_student_config(directory: str | Path) -> StudentConfig:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{Path(directory)}: not a screening student folder (no {CONFIG_NAME})")
    try:
        return StudentConfig.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValueError) as error:
        raise ValueError(f"{path}: not a valid student config ({error})") from None


def load_student(directory: str | Path) -> ScreeningStudent:
    """The student in eval mode, weights checked strictly against its config."""
    folder = Path(directory)
    student = ScreeningStudent(read_student_config(folder))
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{folder}: {WEIGHTS_NAME} is missing")
    load_model(student, str(weights), strict=True)
    return student.eval()


def load_bundled_backbone(directory: str | Path) -> VisionFusion | None:
    """The fusion saved inside a student folder, or None when the student reads a model's backbone."""
    config = read_student_config(directory)
    if config.backbone_source != BUNDLED_BACKBONE:
        return None
    return load_fusion(Path(directory) / BUNDLED_BACKBONE)


def check_backbone(student: ScreeningStudent, fusion: VisionFusion) -> None:
    """Raise unless ``fusion`` is the backbone the student was trained on (when that is recorded)."""
    expected = student.config.backbone_fingerprint
    if fusion.hidden_size != student.config.feature_size:
        raise BackboneMismatchError(
            f"student reads {student.config.feature_size}-wide backbone features, "
            f"this fusion gives {fusion.hidden_size}"
        )
    if expected is not None and (actual := backbone_fingerprint(fusion)) != expected:
        raise BackboneMismatchError(
            f"student was trained on backbone {expected} ({student.config.backbone_source}), "
            f"but this fusion is {actual}"
        )
