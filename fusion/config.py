"""FusionConfig: which encoders, how their tokens are aligned, projected and fused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from fusion.encoders import EncoderSpec, resolve_spec
from fusion.modes import FUSION_MODES
from fusion.projectors import PROJECTORS, ProjectorKind
from fusion.registry import Registry, UnknownEntryError

FusionMode = str
"""The name of an entry in ``fusion.modes.FUSION_MODES``."""


def check_decision_classes(value: list[str]) -> list[str]:
    """Empty (no decision token), or two or more distinct class names (one class is no decision)."""
    if len(value) == 1 or len(set(value)) != len(value):
        raise ValueError(f"decision_classes must be two or more distinct names, got {value}")
    return value


def _known(registry: Registry, name: str) -> str:
    """``name`` if ``registry`` has it, else a ``ValueError`` with the registry's message."""
    try:
        registry[name]
    except UnknownEntryError as error:
        raise ValueError(str(error)) from None
    return name


class FusionConfig(BaseModel):
    """JSON-serialisable description of a ``VisionFusion`` (``model_dump()``/``model_validate()``).

    ``encoders`` holds registry names or full specs (names come from ``fusion.encoders.ENCODERS``,
    or from the registry passed as ``model_validate(..., context={"encoders": registry})``, which
    are then stored as full specs); ``mode`` and ``projector`` name entries of ``FUSION_MODES`` and ``PROJECTORS``; ``grid`` is the target token grid every
    encoder's map is pooled to, so the fused sequence always has ``grid[0] * grid[1]`` tokens.
    ``decision_classes`` adds one token after them that carries the tower's own class
    probabilities (a linear head on the mean fused token, as the classification stage trains it),
    so an LLM can read the tower's decision from one token instead of learning it anew from the
    grid (like the diagnosis-driven prompts of PromptMRG, Jin et al., AAAI 2024).
    """

    model_config = ConfigDict(extra="forbid")

    encoders: list[EncoderSpec | str]
    hidden_size: int
    grid: tuple[int, int] = (8, 8)
    mode: FusionMode = "weighted"
    projector: ProjectorKind = "mlp2x_gelu"
    freeze_encoders: bool = False
    decision_classes: list[str] = []

    @field_validator("encoders")
    @classmethod
    def _names_from_context(cls, value: list[EncoderSpec | str], info: ValidationInfo) -> list[EncoderSpec | str]:
        encoders = (info.context or {}).get("encoders")
        if encoders is None:
            return value
        try:
            return [resolve_spec(spec, encoders) for spec in value]
        except UnknownEntryError as error:
            raise ValueError(str(error)) from None

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        return _known(FUSION_MODES, value)

    @field_validator("projector")
    @classmethod
    def _known_projector(cls, value: str) -> str:
        return _known(PROJECTORS, value)

    @field_validator("hidden_size")
    @classmethod
    def _positive_hidden(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(f"hidden_size must be positive, got {value}")
        return value

    @field_validator("grid")
    @classmethod
    def _positive_grid(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) <= 0:
            raise ValueError(f"grid must be two positive ints, got {value}")
        return value

    @field_validator("decision_classes")
    @classmethod
    def _distinct_classes(cls, value: list[str]) -> list[str]:
        return check_decision_classes(value)

    @model_validator(mode="after")
    def _encoders_resolve_and_unique(self) -> FusionConfig:
        if not self.encoders:
            raise ValueError("encoders: at least one encoder is needed")
        try:
            names = [spec.name for spec in self.resolved_encoders()]
        except UnknownEntryError as error:
            raise ValueError(f"encoders: {error}") from None
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"encoders: names must be unique, repeated: {', '.join(duplicates)}")
        return self

    def resolved_encoders(self) -> list[EncoderSpec]:
        """Full specs (registry names looked up), so a saved config never depends on the registry."""
        return [resolve_spec(spec) for spec in self.encoders]

    def resolved(self) -> FusionConfig:
        return self.model_copy(update={"encoders": self.resolved_encoders()})
