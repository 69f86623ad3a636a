"""Checkpoints that a run can resume from exactly: weights, optimizer, scheduler, RNG, position.

Weights are safetensors; the optimizer/scheduler/RNG file is read back with ``weights_only=True``
so a checkpoint never unpickles arbitrary objects.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from ultra.train.averaging import WeightAverage

logger = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
HEAD = "head.safetensors"
AVERAGE = "average.safetensors"
TRAINER = "trainer_state.pt"
STATE = "state.json"


@dataclass
class RunState:
    """Where a run is: the stage, optimizer steps done in it, and the loss history so far."""

    stage_index: int = 0
    stage_step: int = 0
    global_step: int = 0
    stage_done: bool = False
    history: list[dict] = field(default_factory=list)
    validation: list[dict] = field(default_factory=list)


def checkpoint_dir(output_dir: str | Path, global_step: int, stage_name: str) -> Path:
    return Path(output_dir) / "checkpoints" / f"step-{global_step:07d}-{stage_name}"


def save_checkpoint(
    folder: Path,
    model: nn.Module,
    state: RunState,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    head: nn.Module | None = None,
    average: WeightAverage | None = None,
) -> Path:
    """Write one checkpoint atomically (a temporary folder renamed when complete); ``average``:
    the stage's weight average (``ema_decay``), so a resumed stage ends with the same weights."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_model(model, str(partial / WEIGHTS))
    if head is not None and any(True for _ in head.parameters()):
        save_model(head, str(partial / HEAD))
    if average is not None:
        save_file(average.state_dict(), str(partial / AVERAGE))
    trainer = {
        "torch_rng": torch.get_rng_state(),
        "python_rng": list(random.getstate()[1]),
        "python_rng_version": random.getstate()[0],
    }
    if optimizer is not None:
        trainer["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        trainer["scheduler"] = scheduler.state_dict()
    torch.save(trainer, partial / TRAINER)
    (partial / STATE).write_text(json.dumps(asdict(state), ensure_ascii=False, indent=1), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    logger.info("checkpoint saved: %s", folder)
    return folder


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and (p / STATE).is_file() and p.name.startswith("step-")
    )


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def prune_checkpoints(output_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def read_state(folder: Path) -> RunState:
    return RunState(**json.loads((folder / STATE).read_text(encoding="utf-8")))


def load_weights(folder: Path, model: nn.Module) -> None:
    """Load model weights strictly: a key mismatch means a different model or config."""
    load_model(model, str(folder / WEIGHTS), strict=True)


def load_head_state(folder: Path) -> dict[str, torch.Tensor]:
    """The stage-0 classification heads saved with a checkpoint (empty when there were none)."""
    return load_file(str(folder / HEAD)) if (folder / HEAD).is_file() else {}


def load_trainer_state(
    folder: Path,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    average: WeightAverage | None = None,
) -> None:
    """Restore optimizer, scheduler, weight average and RNG so the next step is the one an
    uninterrupted run takes."""
    trainer = torch.load(folder / TRAINER, weights_only=True)
    saved = (folder / AVERAGE).is_file()
    if average is not None:
        if not saved:
            raise ValueError(
                f"{folder}: the stage keeps a weight average (ema_decay) but this checkpoint has "
                "none; resume with the configuration it was saved with"
            )
        average.load_state_dict(load_file(str(folder / AVERAGE)))
    elif saved and optimizer is not None:
        logger.warning("%s: its weight average is ignored (the stage no longer sets ema_decay)", folder)
    if optimizer is not None and "optimizer" in trainer:
        optimizer.load_state_dict(trainer["optimizer"])
    if scheduler is not None and "scheduler" in trainer:
        scheduler.load_state_dict(trainer["scheduler"])
    torch.set_rng_state(trainer["torch_rng"])
    random.setstate((trainer["python_rng_version"], tuple(trainer["python_rng"]), None))
