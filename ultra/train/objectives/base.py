"""What an objective is and what the runner hands it.

An objective turns one stage's records into a ``StagePlan``: its dataset and collate, its loss,
its validation hook and any extra models it needs (a frozen reference, a teacher). The runner
never branches on the objective's name; a new objective is a new entry of ``OBJECTIVES``
(``ultra.train.objectives.registry``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from data_zh.schema import Record
from ultra.config_io import ConfigError
from ultra.train.config import StageConfig, TrainConfig
from ultra.train.loop import StagePlan


class UnknownObjectiveError(ConfigError):
    """A stage names an objective the registry does not have; the message names the stage and
    lists the known ones."""


class SideModules:
    """Modules an objective keeps beside the model (stage-0 heads, a frozen reference): saved with
    every checkpoint and restored on resume, so a resumed stage sees the same ones.

    One per run, shared by its stages (consecutive classification stages share a head)."""

    def __init__(self, saved: dict[str, torch.Tensor] | None = None) -> None:
        self.modules = nn.ModuleDict()
        self._saved = dict(saved or {})

    def __contains__(self, key: str) -> bool:
        return key in self.modules

    def get_or_create(self, key: str, factory: Callable[[], nn.Module]) -> nn.Module:
        """The module under ``key``; built by ``factory`` on first use, with the checkpoint's
        tensors loaded when the run resumed (strictly: a changed module is an error)."""
        if key not in self.modules:
            module = factory()
            saved = {
                name.split(".", 1)[1]: value
                for name, value in self._saved.items()
                if name.split(".", 1)[0] == key
            }
            if saved:
                load_side_state(module, saved, key)
            self.modules[key] = module
        return self.modules[key]


def load_side_state(module: nn.Module, saved: dict[str, torch.Tensor], key: str) -> None:
    """Load a checkpoint's tensors strictly; a missing key is fine only when it shares storage
    with a loaded one (tied weights are written once)."""
    result = module.load_state_dict(saved, strict=False)
    state = module.state_dict()
    loaded = {state[name].data_ptr() for name in saved if name in state}
    missing = [name for name in result.missing_keys if state[name].data_ptr() not in loaded]
    if result.unexpected_keys or missing:
        raise ValueError(
            f"side module {key!r} does not match the checkpoint: unexpected {result.unexpected_keys[:3]}, "
            f"missing {missing[:3]}"
        )


@dataclass
class StageContext:
    """What the runner hands an objective for one stage.

    ``trainable``: the parameter names the stage's ``train`` patterns unfroze (already applied).
    ``steps_for(num_items)``: the stage's optimizer steps for that many items (epochs, caps).
    ``device``: where extra models (reference, teacher) must live to meet the batches.
    ``model`` holds the stage-start weights when ``plan`` runs, except on a resume inside the stage
    (the checkpoint's weights are loaded after ``plan``): a frozen copy of the stage-start model
    must therefore come from ``side_modules.get_or_create`` (checkpointed), and a teacher should
    be loaded from a fixed path.
    """

    config: TrainConfig
    stage: StageConfig
    index: int
    model: nn.Module
    processor: Any
    records: list[Record]
    validation_records: list[Record]
    trainable: list[str]
    side_modules: SideModules
    device: torch.device
    steps_for: Callable[[int], int]

    @property
    def seed(self) -> int:
        """The stage's seed (augmentation draws), distinct per stage, fixed per run."""
        return self.config.seed + self.index


class Objective(abc.ABC):
    """One training objective, instantiated per stage; ``name`` is its registry entry (a stage's
    ``objective``)."""

    name: ClassVar[str] = ""

    trains_the_tower: ClassVar[bool] = False
    """Its stages fit the vision tower to image labels, without the LLM: the leading run of them is
    the plain classifier that cross-validation compares the VLM with, and they never read the
    decision token (they train its head)."""

    @abc.abstractmethod
    def plan(self, context: StageContext) -> StagePlan:
        """Dataset, collate, loss, validation and extra models of this stage."""
