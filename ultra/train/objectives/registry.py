"""``OBJECTIVES``: the built-in objectives by name, and the check that a run's stages name entries.

A test or a plug-in with another objective passes ``OBJECTIVES.extended({...})`` to the
``Trainer``; the built-in registry never changes.
"""

from __future__ import annotations

from fusion.registry import Registry, UnknownEntryError
from ultra.train.config import TrainConfig
from ultra.train.objectives.base import Objective, UnknownObjectiveError
from ultra.train.objectives.classification import Classification
from ultra.train.objectives.distill import Distill
from ultra.train.objectives.dpo import DirectPreference
from ultra.train.objectives.language_modeling import LanguageModeling

OBJECTIVES: Registry[type[Objective]] = Registry(
    "objective",
    {cls.name: cls for cls in (Classification, LanguageModeling, DirectPreference, Distill)},
)


def check_objectives(config: TrainConfig, objectives: Registry[type[Objective]] = OBJECTIVES) -> None:
    """Refuse a run before it starts when a stage names no entry of ``objectives`` (a
    ``ConfigError`` naming the stage's field, then the registry's message)."""
    for index, stage in enumerate(config.stages):
        try:
            objectives[stage.objective]
        except UnknownEntryError as error:
            raise UnknownObjectiveError(f"stages.{index}.objective (stage {stage.name!r}): {error}") from None
