"""Typed configuration of a self-training run (one YAML file): images, generation, judge, DPO, rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ultra.config_io import load_config
from ultra.model.lora import LoraSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageSource(_Strict):
    """The unlabelled images the policy asks about.

    ``kind``: ``folder`` (PNG/JPEG/DICOM files under ``path``, recursively), ``dicom`` (DICOM files
    under ``path``, first frame), ``records`` (a unified-schema JSONL; each record's images, with
    its labels kept for the label judge), ``busi`` (a BUSI-layout root and a committed ``split``,
    e.g. ``selftrain_pool``; labels kept), or any data source of the registry (``ultra data
    sources``), one record per image."""

    kind: str
    path: str
    split: str | None = Field(default=None, description="records/busi: keep only this split")
    max_images: int | None = Field(default=None, gt=0)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        from ultra.selftrain.sources import check_image_source_kind

        return check_image_source_kind(kind)


class GenerateSettings(_Strict):
    """How the policy asks and answers.

    ``questions``: ``model`` (the policy's own question-generation task, with the template pool
    as the fallback for an output it cannot parse) or ``templates`` (the pool only)."""

    questions: Literal["model", "templates"] = "model"
    questions_per_image: int = Field(default=2, gt=0)
    answers_per_question: int = Field(default=4, ge=2, description="K sampled answers per question")
    temperature: float = Field(default=1.0, gt=0, description="sampling temperature of the K answers")
    question_temperature: float = Field(
        default=0.7, gt=0, description="sampling temperature of the questions"
    )
    top_p: float = Field(default=1.0, gt=0, le=1)
    question_max_new_tokens: int = Field(default=40, gt=0)
    answer_max_new_tokens: int = Field(default=16, gt=0)
    batch_size: int = Field(default=16, gt=0)


class JudgeSettings(_Strict):
    """A judge from ``ultra.selftrain.judges.JUDGES`` and its own options."""

    name: str = "label"
    options: dict[str, Any] = Field(default_factory=dict)


class DPOSettings(_Strict):
    """The DPO stage each round trains (LoRA on the language model against a frozen reference)."""

    beta: float = Field(default=0.1, gt=0)
    lora: LoraSettings = Field(default_factory=lambda: LoraSettings(r=8, alpha=16, dropout=0.0))
    train: list[str] = Field(default_factory=lambda: ["*lora_*"])
    max_steps: int | None = Field(default=None, gt=0)
    epochs: float = Field(default=2.0, gt=0)
    batch_size: int = Field(default=8, gt=0)
    lr: float = Field(default=5e-4, gt=0)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    held_out_fraction: float = Field(
        default=0.2, ge=0, lt=1, description="pairs (by image) kept for the margin"
    )
    validate_every_steps: int = Field(default=0, ge=0)
    save_every_steps: int = Field(default=0, ge=0)


class SelftrainConfig(_Strict):
    """A whole self-training run: ``rounds`` times generate -> judge -> DPO, each from the last policy."""

    model: str = Field(default="tiny-zh", description="the starting policy: a preset or a model folder")
    images: ImageSource
    generate: GenerateSettings = Field(default_factory=GenerateSettings)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    dpo: DPOSettings = Field(default_factory=DPOSettings)
    rounds: int = Field(default=1, gt=0)
    output_dir: str
    seed: int = 0
    allow_remote_images: bool = Field(
        default=False, description="let a remote judge receive (de-identified) images; off unless asked"
    )


def load_selftrain_config(path: str | Path) -> SelftrainConfig:
    """Read a self-training YAML (errors name the file and the field)."""
    return load_config(path, SelftrainConfig)
