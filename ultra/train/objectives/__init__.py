"""Training objectives as a registry: a stage's ``objective`` names an entry here.

Built in: ``classification`` (stage-0 encoder labels), ``language_modeling`` (next-token loss),
``dpo`` (preference pairs against a frozen reference) and ``distill`` (the screening student learns
the VLM teacher's image weights).
A new objective subclasses ``Objective``, builds a ``StagePlan`` from a ``StageContext`` and is
registered by name; the runner's control flow never changes.
"""

from ultra.train.objectives.base import (
    OBJECTIVES,
    Objective,
    ObjectiveRegistry,
    SideModules,
    StageContext,
    UnknownObjectiveError,
    get_objective,
    register_objective,
)
from ultra.train.objectives.classification import Classification
from ultra.train.objectives.distill import Distill
from ultra.train.objectives.dpo import DirectPreference
from ultra.train.objectives.language_modeling import LanguageModeling

__all__ = [
    "OBJECTIVES",
    "Classification",
    "Distill",
    "DirectPreference",
    "LanguageModeling",
    "Objective",
    "ObjectiveRegistry",
    "SideModules",
    "StageContext",
    "UnknownObjectiveError",
    "get_objective",
    "register_objective",
]
