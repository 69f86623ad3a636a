"""``ultra train``: build model, data and stages from a config and run them, resumably."""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn

from data_zh.licences import source_licences
from data_zh.schema import Record
from fusion.registry import Registry
from ultra.config_io import ConfigError
from ultra.model.lora import add_lora, has_lora, merge_lora, save_adapter
from ultra.train import checkpoint as ckpt
from ultra.train.config import StageConfig, TrainConfig
from ultra.train.curves import plot_loss_curve
from ultra.train.data import FailureLog, drop_records_without_media, load_source
from ultra.train.loop import Optimisation, run_stage, stage_summary
from ultra.train.objectives import OBJECTIVES, Objective, SideModules, StageContext, check_objectives
from ultra.train.order import stage_order, total_optimizer_steps
from ultra.train.params import apply_trainable, match_parameters

logger = logging.getLogger(__name__)

SMOKE_VALIDATION_RECORDS = 16


@dataclass
class TrainingResult:
    """What a run produced: the exported model folder, the loss curve, timings and scores."""

    output_dir: Path
    final_dir: Path
    loss_curve: Path
    wall_s: float
    stages: list[dict] = field(default_factory=list)
    validation: list[dict] = field(default_factory=list)
    skipped_records: list[str] = field(default_factory=list)
    training_data: list[dict] = field(default_factory=list)


def resolve_mixed_precision(setting: str) -> str:
    """``auto``: bf16 on GPUs that support it, else full precision (CPU bf16 is slower here)."""
    if setting != "auto":
        return setting
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def build_model(config: TrainConfig) -> tuple[nn.Module, Any]:
    """The starting model and processor: a preset is built fresh (hub weights where the preset
    has them, random init otherwise); a folder (e.g. the embedded model) is loaded to fine-tune."""
    from ultra.model import build_model as build_preset
    from ultra.model import get_preset, list_presets, load_model

    name, size = config.model.name_or_path, config.model.image_size
    decision = config.model.decision_classes
    if name in list_presets():
        overrides: dict[str, Any] = {}
        if size is not None:
            encoders = [spec.model_copy(update={"input_size": size}) for spec in get_preset(name).encoders]
            overrides["encoders"] = [spec.model_dump() for spec in encoders]
        if decision:
            overrides["decision_classes"] = list(decision)
        return build_preset(name, pretrained=True, overrides=overrides or None)
    for setting, value in (("image_size", size), ("decision_classes", decision)):
        if value:
            raise ConfigError(f"model.{setting} applies to a preset built fresh, not to the folder {name}")
    return load_model(name)


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Recompute activations in the backward pass (less memory, ~30% more compute)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ValueError(f"gradient_checkpointing: {type(model).__name__} does not support it")
    model.gradient_checkpointing_enable()


def apply_stage_structure(model: nn.Module, stage: StageConfig, finished: bool) -> None:
    """Structural changes a stage makes (LoRA layers), as they stand at its start or after its end."""
    if stage.lora is None:
        return
    if finished and stage.merge_lora:
        return
    if not has_lora(model):
        add_lora(model, stage.lora)


class TrainingInterrupted(RuntimeError):
    """Raised by ``stop_after``: the run stopped on purpose after a checkpoint (time-boxed jobs)."""


class Trainer:
    """One training run; ``run()`` executes every remaining stage and exports the result."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        max_steps: int | None = None,
        show_progress: bool = True,
        model_builder: Any = None,
        stop_after: int | None = None,
        objectives: Registry[type[Objective]] = OBJECTIVES,
    ) -> None:
        """``model_builder(config) -> (model, processor)`` replaces the preset/folder loading (e.g. a
        model built in memory); it must return the same starting weights every call for resume.
        ``objectives``: the registry the stages' ``objective`` names come from (checked here)."""
        check_objectives(config, objectives)
        self.config = config
        self.objectives = objectives
        self.model_builder = model_builder or build_model
        self.stop_after = stop_after
        self.max_steps = max_steps
        self.show_progress = show_progress
        self.output_dir = Path(config.output_dir)
        self._records: dict[str, list[Record]] = {}
        self.failures = FailureLog()
        self.trained: set[str] = set()
        self.side_modules = SideModules()

    # data -----------------------------------------------------------------------------------
    def source_records(self, name: str) -> list[Record]:
        """The records of one data source, loaded once per run."""
        if name not in self._records:
            loaded = load_source(self.config.data[name], seed=self.config.seed)
            self._records[name] = drop_records_without_media(loaded)
            logger.info("data source %s: %d records", name, len(self._records[name]))
        return self._records[name]

    def records_for(self, stage: StageConfig) -> list[Record]:
        records: list[Record] = []
        for name in stage.sources or list(self.config.data):
            records.extend(self.source_records(name))
        return records

    def training_data(self) -> list[dict]:
        """Provenance of every record any stage trains on: per data source, the records' sources
        and licences (the licence gate of shippable exports reads it; validation data is not here)."""
        names = dict.fromkeys(
            name for stage in self.config.stages for name in stage.sources or self.config.data
        )
        return [
            {"data_source": name, **row}
            for name in names
            for row in source_licences(self.source_records(name))
        ]

    def validation_records(self) -> list[Record]:
        source = self.config.validation.source
        if source is None:
            return []
        if "__validation__" not in self._records:
            records = drop_records_without_media(load_source(source, seed=self.config.seed))
            limit = self.config.validation.max_records
            if self.max_steps:  # a --max-steps run checks the pipeline, not the score
                limit = min(limit or SMOKE_VALIDATION_RECORDS, SMOKE_VALIDATION_RECORDS)
            self._records["__validation__"] = records[:limit] if limit else records
        return self._records["__validation__"]

    def steps_for(self, stage: StageConfig, num_items: int) -> int:
        steps = stage.max_steps or total_optimizer_steps(
            num_items, stage.epochs, stage.batch_size, stage.grad_accum
        )
        return min(steps, self.max_steps) if self.max_steps else steps

    # run ------------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> TrainingResult:
        started = time.perf_counter()
        config = self.config
        if config.threads:
            torch.set_num_threads(config.threads)
        set_seed(config.seed)
        accelerator = Accelerator(mixed_precision=resolve_mixed_precision(config.mixed_precision))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "config.json").write_text(
            json.dumps(config.model_dump(mode="json"), ensure_ascii=False, indent=1), encoding="utf-8"
        )
        model, processor = self.model_builder(config)
        check_decision_head_order(model, config, self.objectives)
        if config.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        state = ckpt.RunState()
        resume_from = ckpt.latest_checkpoint(self.output_dir) if resume else None
        if resume and resume_from is None:
            logger.warning("--resume: no checkpoint in %s; starting from the beginning", self.output_dir)
        if resume_from is not None:
            state = ckpt.read_state(resume_from)
            self.side_modules = SideModules(ckpt.load_head_state(resume_from))
            logger.info(
                "resuming from %s (stage %d, step %d)", resume_from, state.stage_index, state.stage_step
            )
        summaries: list[dict] = []
        for index, stage in enumerate(config.stages):
            if index < state.stage_index:
                apply_stage_structure(model, stage, finished=True)
                self._note_trained(model, match_parameters(model, stage.train, require_hits=False))
                continue
            from_checkpoint = resume_from if index == state.stage_index else None
            if from_checkpoint is not None and state.stage_step == 0:
                ckpt.load_weights(from_checkpoint, model)
                ckpt.load_trainer_state(from_checkpoint)
                from_checkpoint = None
            apply_stage_structure(model, stage, finished=False)
            summaries.append(
                self._run_one(model, processor, stage, index, state, accelerator, from_checkpoint)
            )
            if stage.lora is not None:
                if stage.merge_lora:
                    merge_lora(model)
                else:
                    save_adapter(model, self.output_dir / "adapters" / stage.name)
            state.stage_index, state.stage_step = index + 1, 0
            self._save(model, state, accelerator, stage.name)
            resume_from = None
        final_dir = self.export(model, processor)
        curve = plot_loss_curve(state.history, self.output_dir / "loss_curve.png")
        result = TrainingResult(
            output_dir=self.output_dir,
            final_dir=final_dir,
            loss_curve=curve,
            wall_s=time.perf_counter() - started,
            stages=summaries,
            validation=state.validation,
            skipped_records=self.failures.record_ids(),
            training_data=self.training_data(),
        )
        (self.output_dir / "summary.json").write_text(
            json.dumps(
                {
                    "wall_s": round(result.wall_s, 1),
                    "stages": summaries,
                    "validation": state.validation,
                    "skipped_records": result.skipped_records,
                    "training_data": result.training_data,
                },
                ensure_ascii=False,
                indent=1,
            ),
            encoding="utf-8",
        )
        return result

    def _note_trained(self, model: nn.Module, names: list[str]) -> None:
        """Remember what the run trains; once the projectors learn (from the start of their stage,
        or a stage finished before a resume), validation and the export say so."""
        self.trained.update(names)
        if any(".projectors." in name for name in names) and hasattr(model.config, "projectors_trained"):
            model.config.projectors_trained = True

    def _run_one(
        self,
        model: nn.Module,
        processor: Any,
        stage: StageConfig,
        index: int,
        state: ckpt.RunState,
        accelerator: Accelerator,
        from_checkpoint: Path | None,
    ) -> dict:
        trainable = apply_trainable(model, stage.train)
        self._note_trained(model, trainable)
        context = StageContext(
            config=self.config,
            stage=stage,
            index=index,
            model=model,
            processor=processor,
            records=self.records_for(stage),
            validation_records=self.validation_records(),
            trainable=trainable,
            side_modules=self.side_modules,
            device=accelerator.device,
            steps_for=lambda num_items: self.steps_for(stage, num_items),
        )
        plan = self.objectives[stage.objective]().plan(context)

        def restore(optimisation: Optimisation) -> None:
            if from_checkpoint is not None:
                ckpt.load_weights(from_checkpoint, model)
                ckpt.load_trainer_state(
                    from_checkpoint, optimisation.optimizer, optimisation.scheduler, optimisation.average
                )

        every_val = self.config.validation.every_steps
        every_save = self.config.save_every_steps

        def on_step(step: int, optimisation: Optimisation) -> None:
            last = step == plan.total_steps
            if plan.validate is not None and ((every_val and step % every_val == 0) or last):
                scores = plan.validate(plan.module)
                averaged = {"weights": "average"} if last and stage.ema_decay is not None else {}
                state.validation.append(
                    {
                        "stage": stage.name,
                        "step": step,
                        "global_step": state.global_step,
                        **averaged,
                        **scores,
                    }
                )
                logger.info("validation %s step %d: %s", stage.name, step, _short(scores))
            stopping = self.stop_after is not None and state.global_step >= self.stop_after and not last
            if (every_save and step % every_save == 0 and not last) or stopping:
                self._save(model, state, accelerator, stage.name, optimisation)
            if stopping:
                raise TrainingInterrupted(f"stopped after global step {state.global_step} (checkpoint saved)")

        seed = self.config.seed * 100 + index

        def order(num_items: int, num_samples: int) -> list[int]:
            return stage_order(num_items, num_samples, seed)

        run_stage(
            plan,
            accelerator,
            state,
            seed_order=order,
            failures=self.failures,
            restore=restore,
            on_step=on_step,
            num_workers=self.config.num_workers,
            show_progress=self.show_progress,
            log_every=self.config.log_every_steps,
        )
        return stage_summary(plan, self.output_dir)

    def _save(
        self,
        model: nn.Module,
        state: ckpt.RunState,
        accelerator: Accelerator,
        stage_name: str,
        optimisation: Optimisation | None = None,
    ) -> None:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            folder = ckpt.checkpoint_dir(self.output_dir, state.global_step, stage_name)
            ckpt.save_checkpoint(
                folder,
                accelerator.unwrap_model(model),
                state,
                optimisation.optimizer if optimisation else None,
                optimisation.scheduler if optimisation else None,
                self.side_modules.modules,
                optimisation.average if optimisation else None,
            )
            ckpt.prune_checkpoints(self.output_dir, self.config.keep_checkpoints)

    def export(self, model: nn.Module, processor: Any) -> Path:
        """The trained model as a plain ``from_pretrained`` folder (weights in ``export_dtype``)."""
        final_dir = self.output_dir / "final"
        dtype = getattr(torch, self.config.export_dtype)
        # a converted copy keeps tied weights tied (saved once) and leaves the trained model as it is
        copy.deepcopy(model).to(dtype).save_pretrained(final_dir)
        if hasattr(processor, "save_pretrained"):
            processor.save_pretrained(final_dir)
        logger.info("model exported to %s (%s)", final_dir, self.config.export_dtype)
        return final_dir


def check_decision_head_order(
    model: nn.Module, config: TrainConfig, objectives: Registry[type[Objective]] = OBJECTIVES
) -> None:
    """A model built fresh with a decision token feeds its head's class probabilities to the
    LLM: a stage that reads it (any but a tower stage) and comes before any stage trains that head
    would learn from a random head's guesses, so the run is refused before it starts."""
    if not config.model.decision_classes:
        return
    head_trained = False
    for stage in config.stages:
        if not objectives[stage.objective].trains_the_tower and not head_trained:
            raise ConfigError(
                f"stage {stage.name!r} reads the decision token, but no stage before it trains "
                "model.vision_tower.decision_head.* (model.decision_classes is set); train the head "
                "in a classification stage on those classes first"
            )
        names = match_parameters(model, stage.train, require_hits=False)
        head_trained = head_trained or any(".decision_head." in name for name in names)


def _short(scores: dict) -> str:
    return ", ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in scores.items()
        if not isinstance(v, dict | list)
    )


def run_training(
    config: TrainConfig,
    *,
    max_steps: int | None = None,
    resume: bool = False,
    show_progress: bool = True,
    stop_after: int | None = None,
) -> TrainingResult:
    """Train every stage of ``config`` (from its last checkpoint with ``resume``) and export."""
    trainer = Trainer(config, max_steps=max_steps, show_progress=show_progress, stop_after=stop_after)
    return trainer.run(resume=resume)
