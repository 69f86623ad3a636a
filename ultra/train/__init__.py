"""Training: typed stage configs, objectives by name (a registry), an accelerate loop with exact resume,
and the embedded model's recipe."""

from ultra.train.checkpoint import RunState, latest_checkpoint, list_checkpoints
from ultra.train.config import (
    Augmentation,
    DataSource,
    ModelSource,
    StageConfig,
    TrainConfig,
    ValidationConfig,
    load_train_config,
)
from ultra.train.curves import plot_loss_curve
from ultra.train.data import FailureLog, LoadFailure, RecordDataset, load_source
from ultra.train.objectives import OBJECTIVES, Objective, StageContext, UnknownObjectiveError
from ultra.train.order import stage_order
from ultra.train.params import TrainableSelectionError, apply_trainable, match_parameters
from ultra.train.runner import Trainer, TrainingInterrupted, TrainingResult, run_training

__all__ = [
    "OBJECTIVES",
    "Augmentation",
    "DataSource",
    "FailureLog",
    "LoadFailure",
    "ModelSource",
    "RecordDataset",
    "RunState",
    "StageContext",
    "Objective",
    "StageConfig",
    "TrainConfig",
    "Trainer",
    "TrainableSelectionError",
    "TrainingInterrupted",
    "TrainingResult",
    "UnknownObjectiveError",
    "ValidationConfig",
    "apply_trainable",
    "latest_checkpoint",
    "list_checkpoints",
    "load_source",
    "load_train_config",
    "match_parameters",
    "plot_loss_curve",
    "run_training",
    "stage_order",
]
