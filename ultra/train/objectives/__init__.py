"""Training objectives by name: a stage's ``objective`` names an entry of ``OBJECTIVES``.

Built in: ``classification`` (stage-0 encoder labels), ``language_modeling`` (next-token loss),
``dpo`` (preference pairs against a frozen reference) and ``distill`` (the screening student learns
the VLM teacher's image weights).
A new objective subclasses ``Objective``, builds a ``StagePlan`` from a ``StageContext`` and is
an entry of a registry (``OBJECTIVES.extended({...})`` handed to the ``Trainer``); the runner's
control flow never changes.
"""

from ultra.train.objectives.base import Objective, SideModules, StageContext, UnknownObjectiveError
from ultra.train.objectives.classification import Classification
from ultra.train.objectives.distill import Distill
from ultra.train.objectives.dpo import DirectPreference
from ultra.train.objectives.language_modeling import LanguageModeling
from ultra.train.objectives.registry import OBJECTIVES, check_objectives

__all__ = [
    "OBJECTIVES",
    "Classification",
    "Distill",
    "DirectPreference",
    "LanguageModeling",
    "Objective",
    "SideModules",
    "StageContext",
    "UnknownObjectiveError",
    "check_objectives",
]
