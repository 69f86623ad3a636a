"""Training: typed stage configs, an accelerate loop with exact resume, and the embedded model's recipe."""

from ultra.train.checkpoint import RunState, latest_checkpoint, list_checkpoints
from ultra.train.config import (
    Augmentation,
    DataSource,
    LoraSettings,
    ModelSource,
    StageConfig,
    TrainConfig,
    ValidationConfig,
    load_train_config,
)
from ultra.train.curves import plot_loss_curve
from ultra.train.data import RecordDataset, SkippingCollator, load_source
from ultra.train.lora import add_lora, merge_lora, save_adapter
from ultra.train.order import stage_order
from ultra.train.params import TrainableSelectionError, apply_trainable, match_parameters
from ultra.train.runner import Trainer, TrainingInterrupted, TrainingResult, run_training

__all__ = [
    "Augmentation",
    "DataSource",
    "LoraSettings",
    "ModelSource",
    "RecordDataset",
    "RunState",
    "SkippingCollator",
    "StageConfig",
    "TrainConfig",
    "Trainer",
    "TrainableSelectionError",
    "TrainingInterrupted",
    "TrainingResult",
    "ValidationConfig",
    "add_lora",
    "apply_trainable",
    "latest_checkpoint",
    "list_checkpoints",
    "load_source",
    "load_train_config",
    "match_parameters",
    "merge_lora",
    "plot_loss_curve",
    "run_training",
    "save_adapter",
    "stage_order",
]
