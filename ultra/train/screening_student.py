"""Train the screening student with the ``distill`` objective and save it where ``ultra screen`` reads it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ultra.train.config import TrainConfig

STUDENT_DIR = "student"


@dataclass(frozen=True)
class StudentTrainingResult:
    student_dir: Path
    loss_curve: Path
    wall_s: float
    stages: list[dict]
    skipped_records: list[str]


def train_screening_student(
    config: TrainConfig, *, max_steps: int | None = None, resume: bool = False, show_progress: bool = True
) -> StudentTrainingResult:
    """Run the config's stages (each must use the ``distill`` objective), then save the student to
    ``output_dir/student`` (``screening.save_student``: safetensors + student.json)."""
    from screening import save_student
    from ultra.train.objectives.distill import STUDENT_KEY
    from ultra.train.runner import Trainer

    others = [stage.name for stage in config.stages if stage.objective != "distill"]
    if others:
        raise ValueError(f"ultra screen train runs distill stages only; not distill: {', '.join(others)}")
    trainer = Trainer(config, max_steps=max_steps, show_progress=show_progress)
    result = trainer.run(resume=resume)
    folder = save_student(trainer.side_modules.modules[STUDENT_KEY], Path(config.output_dir) / STUDENT_DIR)
    return StudentTrainingResult(
        folder, result.loss_curve, result.wall_s, result.stages, result.skipped_records
    )
