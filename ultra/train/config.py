"""Typed training configuration: data sources, stages, validation — one YAML file per run.

Which parameters a stage trains is data (name patterns), never decided by a model's name, so the
state-dict tests can check each stage against its own config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from data_zh.builders.wordings import TRAINING_SETS, WordingSet
from fusion.config import check_decision_classes
from ultra.config_io import load_config
from ultra.model.lora import LoraSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhantomSet(_Strict):
    """Synthetic breast-ultrasound phantoms (``data_zh.builders.phantom``) rendered into the source's folder:
    labelled images (no finding / oval mass / irregular mass) to pre-train encoders on."""

    count: int = Field(gt=0, description="images to render, the three findings in turn")
    size: int = Field(default=256, ge=32, description="width and height in pixels")
    seed: int = Field(
        default=0, description="fixed, so every run and fold reusing the folder shares one rendered set"
    )


class DataSource(_Strict):
    """One input file or dataset folder turned into unified records.

    ``kind`` names a ``data_zh.sources`` entry (``ultra data sources`` lists them): e.g. ``records``
    (unified-schema JSONL), ``llava`` (LLaVA JSONL, paths relative to ``image_root``),
    ``busi_instructions`` (BUSI instruction tasks of one split; ``busi`` says the same),
    ``busi_vqa`` (the BUSI-zh closed questions with gold answers, for validation),
    ``busi_question_types`` (text-only exchanges that teach the BUSI question types; no ``path``),
    ``dicom_instructions`` (modality questions on DICOM files; ``dicom`` says the same), ``slake``,
    ``laparoscopy_video`` (video QA on laparoscopy clips of one split), ``phantom`` (synthetic
    ultrasound phantoms rendered into ``path``, see ``phantom``).
    """

    kind: str = Field(description="a data_zh.sources entry (or busi, dicom: the names configs have long used)")
    path: str = Field(default="", description="file or folder (every kind that reads a root)")
    image_root: str | None = None
    split: str | None = Field(default=None, description="keep only records of this split (None: all)")
    language: str | None = Field(default=None, description="keep only this language, e.g. zh")
    classes: list[str] | None = Field(
        default=None, description="keep only records labelled with one of these classes (rebalancing)"
    )
    text_only: bool = Field(default=False, description="drop media (e.g. SLAKE, whose images are absent)")
    max_records: int | None = Field(default=None, gt=0, description="seeded subsample size")
    repeat: int = Field(default=1, ge=1, description="repeat the records (upweight a small source)")
    allow_outside_root: bool = Field(
        default=False,
        description="read media paths that leave the media root (../, absolute); refused otherwise",
    )
    wordings: WordingSet = Field(
        default="train",
        description="BUSI question wordings: a training set (train; train-v2 adds 吗 questions) or the held-out one",
    )
    phrasings: int = Field(
        default=1, ge=1, description="busi: distinct wordings of each question per image (drawn per image)"
    )
    images: list[str] | None = Field(
        default=None,
        description="keep only records whose images are all among these keys (cross-validation folds)",
    )
    tasks: list[str] | None = Field(
        default=None,
        description="keep only records of these tasks (e.g. closed_vqa, report, question_generation)",
    )
    phantom: PhantomSet | None = Field(default=None, description="phantom: what to render into path")

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str] | None) -> list[str] | None:
        from data_zh.schema import TASKS

        unknown = [task for task in tasks or [] if task not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; known: {', '.join(TASKS)}")
        return tasks

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        from data_zh.sources import SOURCES, TRAINING_NAMES

        if kind not in SOURCES and kind not in TRAINING_NAMES:
            known = ", ".join(sorted({*SOURCES, *TRAINING_NAMES}))
            raise ValueError(f"unknown data source kind {kind!r}; known: {known}")
        return kind

    @model_validator(mode="after")
    def _path_given(self) -> DataSource:
        from data_zh.sources import SOURCES, TRAINING_NAMES, resolve_source

        spec = SOURCES[resolve_source(self.kind, SOURCES, TRAINING_NAMES).source]
        if not self.path and spec.root is not None:
            raise ValueError(f"a {self.kind} data source needs a path ({spec.root})")
        if ("count" in spec.options) != (self.phantom is not None):
            raise ValueError("phantom settings (count, size, seed) go with a phantom source, and only there")
        return self


class Augmentation(_Strict):
    """Image augmentation for supervised encoder training (a few hundred images overfit fast)."""

    hflip: bool = True
    crop_scale: tuple[float, float] = (0.7, 1.0)
    brightness: float = Field(default=0.2, ge=0)
    contrast: float = Field(default=0.2, ge=0)


class StageConfig(_Strict):
    """One training stage.

    ``objective``: the name of an entry in the objectives registry (``ultra.train.objectives``;
    the trainer checks it and lists the known names). Built in: ``classification`` trains the
    vision encoders on the records' labels through a temporary linear head (stage 0 for presets
    without pretrained parts); ``language_modeling`` is next-token loss on the answers (LLM from
    scratch, alignment, instruction tuning).
    ``train``: fnmatch patterns over parameter names; everything else is frozen. With ``lora`` the
    LoRA matrices (``ultra.model.lora``) are added to the language model first and their names
    (``*lora_*``) may be used.
    """

    name: str
    objective: str = Field(default="language_modeling", min_length=1)
    objective_options: dict[str, Any] = Field(
        default_factory=dict,
        description="settings of the objective (each objective validates its own, e.g. dpo's beta)",
    )
    train: list[str] = Field(
        min_length=0, description="empty only for objectives that train their own side modules (distill)"
    )
    sources: list[str] | None = Field(default=None, description="names of data sources; None: all")
    label_key: str = Field(default="class", description="classification: key in record.labels")
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, gt=0, description="optimizer steps; overrides epochs")
    batch_size: int = Field(default=8, gt=0)
    grad_accum: int = Field(default=1, gt=0)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    lora: LoraSettings | None = None
    merge_lora: bool = Field(default=True, description="merge LoRA into the weights when the stage ends")
    augmentation: Augmentation | None = None
    freeze_norm_statistics: bool = Field(
        default=False,
        description="keep every batch-norm layer in eval mode (running statistics fixed), e.g. to "
        "fine-tune encoders after a probe stage without the batch-statistics shift",
    )
    cache_frozen_image_features: bool = Field(
        default=True, description="when the stage trains nothing in the vision tower, encode each image once"
    )
    ema_decay: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="keep an exponential moving average of the weights (and batch-norm statistics) and "
        "end the stage with it: the result depends less on the last steps and the seed; a horizon of "
        "about 1 / (1 - ema_decay) steps",
    )


class ValidationConfig(_Strict):
    """Periodic validation with ``ultra.eval``'s scorer on a held-out set of closed questions."""

    source: DataSource | None = None
    every_steps: int = Field(default=0, ge=0, description="0: only at the end of each stage")
    max_records: int | None = Field(default=None, gt=0)
    batch_size: int = Field(default=16, gt=0)
    max_new_tokens: int = Field(default=8, gt=0)


class ModelSource(_Strict):
    """Where the model comes from: a preset name (built fresh: ``tiny-zh`` from scratch, hub
    presets from their hub weights) or a saved model folder (fine-tuning, e.g. the embedded model)."""

    name_or_path: str
    image_size: int | None = Field(
        default=None,
        ge=32,
        description="a preset built fresh at this input size for every encoder (the token grid stays)",
    )
    decision_classes: list[str] = Field(
        default_factory=list,
        description="a preset built fresh with a decision token for these classes: the tower's class "
        "probabilities, learnt by the classification stage with these labels, as one more image token",
    )

    @field_validator("decision_classes")
    @classmethod
    def _distinct_classes(cls, value: list[str]) -> list[str]:
        return check_decision_classes(value)


class TrainConfig(_Strict):
    """A whole run: model, data, stages in order, validation, output."""

    model: ModelSource
    data: dict[str, DataSource] = Field(min_length=1)
    stages: list[StageConfig] = Field(min_length=1)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    output_dir: str
    seed: int = 0
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool = False
    save_every_steps: int = Field(default=0, ge=0, description="0: checkpoint only at stage ends")
    log_every_steps: int = Field(
        default=0, ge=0, description="also log loss and rate every N steps (log files)"
    )
    keep_checkpoints: int = Field(default=2, gt=0)
    num_workers: int = Field(default=0, ge=0)
    threads: int | None = Field(default=None, gt=0, description="torch CPU threads (None: torch default)")
    export_dtype: Literal["float32", "float16", "bfloat16"] = "float32"

    @field_validator("data")
    @classmethod
    def _never_train_on_heldout_wordings(cls, data: dict[str, DataSource]) -> dict[str, DataSource]:
        """The held-out wordings measure whether question types generalise; training on them would
        leave that number meaning nothing (validation may ask them, training may not)."""
        heldout = sorted(name for name, source in data.items() if source.wordings == "heldout")
        if heldout:
            raise ValueError(
                f"training source(s) {heldout} use the held-out wordings; use one of {', '.join(TRAINING_SETS)}"
            )
        return data

    @model_validator(mode="after")
    def _check_references(self) -> TrainConfig:
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        for stage in self.stages:
            for source in stage.sources or []:
                if source not in self.data:
                    raise ValueError(
                        f"stage {stage.name!r} uses data source {source!r}, not one of {sorted(self.data)}"
                    )
        return self


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a training YAML; relative data/output paths stay relative to the working directory.
    ``overrides``: ``dotted.path=VALUE`` changes (``--set`` on the command line)."""
    return load_config(path, TrainConfig, overrides)
