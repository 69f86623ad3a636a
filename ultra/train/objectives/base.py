"""What an objective is, what the runner hands it, and the registry that names objectives.

An objective turns one stage's records into a ``StagePlan``: its dataset and collate, its loss,
its validation hook and any extra models it needs (a frozen reference, a teacher). The runner
never branches on the objective's name; a new objective is a new registry entry.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from data_zh.schema import Record
from ultra.config_io import ConfigError
from ultra.train.config import StageConfig, TrainConfig
from ultra.train.loop import StagePlan


class UnknownObjectiveError(ConfigError):
    """A stage names an objective the registry does not have; the message lists the known ones."""


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
    """One training objective; instantiated per stage by the registry."""

    trains_the_tower: ClassVar[bool] = False
    """Its stages fit the vision tower to image labels, without the LLM: the leading run of them is
    the plain classifier that cross-validation compares the VLM with, and they never read the
    decision token (they train its head)."""

    @abc.abstractmethod
    def plan(self, context: StageContext) -> StagePlan:
        """Dataset, collate, loss, validation and extra models of this stage."""


class ObjectiveRegistry(Mapping[str, type[Objective]]):
    """Objective classes by name. ``ObjectiveRegistry(OBJECTIVES)`` copies the built-in one, so a
    test or a plug-in adds entries to its own copy and passes it to the ``Trainer``."""

    def __init__(self, entries: Mapping[str, type[Objective]] | None = None) -> None:
        self._entries: dict[str, type[Objective]] = dict(entries or {})

    def __getitem__(self, name: str) -> type[Objective]:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def register(self, name: str) -> Callable[[type[Objective]], type[Objective]]:
        """Class decorator: add an objective under ``name`` (a name is taken once)."""

        def add(cls: type[Objective]) -> type[Objective]:
            if name in self._entries:
                raise ValueError(f"objective {name!r} is already registered ({self._entries[name].__name__})")
            if not (isinstance(cls, type) and issubclass(cls, Objective)):
                raise TypeError(f"objective {name!r}: {cls!r} is not an Objective subclass")
            self._entries[name] = cls
            return cls

        return add

    def create(self, name: str, stage_name: str | None = None) -> Objective:
        """A fresh instance of the objective ``name``; an unknown name lists the known ones."""
        if name not in self._entries:
            where = f"stage {stage_name!r}: " if stage_name else ""
            raise UnknownObjectiveError(
                f"{where}objective {name!r} is not registered; known objectives: {', '.join(sorted(self))}"
            )
        return self._entries[name]()

    def check(self, config: TrainConfig) -> None:
        """Raise ``UnknownObjectiveError`` for the first stage whose objective is not registered."""
        for index, stage in enumerate(config.stages):
            if stage.objective not in self._entries:
                raise UnknownObjectiveError(
                    f"stages.{index}.objective: {stage.objective!r} (stage {stage.name!r}) is not registered; "
                    f"known objectives: {', '.join(sorted(self))}"
                )


OBJECTIVES = ObjectiveRegistry()
"""The built-in objectives, filled once at import by ``register_objective`` (timm's pattern)."""


def register_objective(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator for the built-in registry (``ultra.train.objectives`` modules only; tests and
    plug-ins register into their own ``ObjectiveRegistry(OBJECTIVES)`` copy)."""
    return OBJECTIVES.register(name)


def get_objective(name: str, registry: ObjectiveRegistry = OBJECTIVES) -> Objective:
    """A fresh instance of objective ``name`` from ``registry`` (default: the built-in one)."""
    return registry.create(name)
