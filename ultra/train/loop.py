"""The optimisation loop of one stage, through ``accelerate`` (one process or many)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fusion.progress import progress_bar
from ultra.config_io import ConfigError
from ultra.train.averaging import WeightAverage, warn_if_start_dominates
from ultra.train.checkpoint import RunState
from ultra.train.config import StageConfig
from ultra.train.data import FailureLog, OrderedView, SkippingCollator

logger = logging.getLogger(__name__)


def ordered_view(dataset: Dataset, order: list[int], offset: int) -> Dataset:
    """The dataset read in the stage order from ``offset`` samples on (the default view)."""
    return OrderedView(dataset, order[offset:])


@dataclass
class StagePlan:
    """Everything one stage needs; built by the stage's objective (``ultra.train.objectives``).

    ``dataset`` items are the objective's own (or a ``LoadFailure``); ``collate`` sees only the
    loadable ones; ``loss_fn(module, inputs)`` turns a collated batch into the loss; ``view``
    reads the dataset in the stage order from an offset (resume); ``validate(module)`` scores.
    """

    stage: StageConfig
    index: int
    module: nn.Module
    dataset: Dataset
    collate: Callable[[list], Any]
    loss_fn: Callable[[nn.Module, Any], torch.Tensor]
    total_steps: int
    validate: Callable[[nn.Module], dict] | None = None
    view: Callable[[Dataset, list[int], int], Dataset] = ordered_view
    extra: dict = field(default_factory=dict)


@dataclass
class Optimisation:
    """What a stage's steps change besides the weights, and what a checkpoint keeps of it: the
    optimizer, its learning-rate schedule and the weight average (``ema_decay``; else None)."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    average: WeightAverage | None = None


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay to 10% of the peak rate."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def freeze_frozen_norms(module: nn.Module, all_norms: bool = False) -> None:
    """Batch-norm layers with no trainable parameter (or all, with ``all_norms``) stay in eval
    mode, so a 'frozen' encoder's running statistics do not drift while other parts train."""
    for child in module.modules():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            params = list(child.parameters(recurse=False))
            if all_norms or (params and not any(p.requires_grad for p in params)):
                child.eval()


def set_training_mode(module: nn.Module, all_norms_frozen: bool = False) -> None:
    module.train()
    freeze_frozen_norms(module, all_norms_frozen)


SHARDED = (DistributedType.FSDP, DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM)


def stage_average(plan: StagePlan, accelerator: Accelerator) -> WeightAverage:
    """The stage's weight average (``ema_decay``); sharded training is refused, as the average
    is kept whole beside the module's shards."""
    if accelerator.distributed_type in SHARDED:
        raise ConfigError(
            f"stage {plan.stage.name!r}: ema_decay works in one process or with DDP, "
            f"not with {accelerator.distributed_type.value}"
        )
    warn_if_start_dominates(plan.stage.name, plan.stage.ema_decay, plan.total_steps)
    return WeightAverage(plan.module, plan.stage.ema_decay)


def _optimisation(plan: StagePlan, accelerator: Accelerator, parameters: list[nn.Parameter]) -> Optimisation:
    """AdamW over the trainable parameters, its warm-up-cosine schedule and the weight average."""
    stage = plan.stage
    optimizer = torch.optim.AdamW(parameters, lr=stage.lr, weight_decay=stage.weight_decay)
    scheduler = warmup_cosine(optimizer, int(stage.warmup_ratio * plan.total_steps), plan.total_steps)
    average = None
    if stage.ema_decay is not None:
        average = stage_average(plan, accelerator)
    return Optimisation(optimizer, scheduler, average)


def _stage_loader(plan: StagePlan, order: list[int], offset: int, num_workers: int) -> DataLoader:
    """Batches of the stage order from ``offset`` samples on, unloadable items set aside."""
    return DataLoader(
        plan.view(plan.dataset, order, offset),
        batch_size=plan.stage.batch_size,
        shuffle=False,
        collate_fn=SkippingCollator(plan.collate),
        num_workers=num_workers,
    )


def _accumulate(
    plan: StagePlan,
    accelerator: Accelerator,
    module: nn.Module,
    batches: Iterator,
    failures: FailureLog,
    step: int,
) -> tuple[list[float], int]:
    """The micro-batches of one optimizer step: forward and backward, gradients synchronised on
    the last only; a non-finite loss stops the run. Returns the losses and the samples seen."""
    stage = plan.stage
    losses, seen = [], 0
    for micro in range(stage.grad_accum):
        batch = next(batches, None)
        if batch is None:
            continue
        failures.report(batch.failures)
        if not batch.size:
            continue
        sync = micro == stage.grad_accum - 1
        with nullcontext() if sync else accelerator.no_sync(module), accelerator.autocast():
            loss = plan.loss_fn(module, batch.inputs)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"stage {stage.name!r}: loss is {loss.item()} at step {step + 1}")
            accelerator.backward(loss / stage.grad_accum)
        losses.append(loss.item())
        seen += batch.size
    return losses, seen


def _record_step(
    plan: StagePlan, state: RunState, step: int, losses: list[float], rate: float, lr: float, log_every: int
) -> float:
    """Count the finished step in ``state`` and its history (and the log every ``log_every``
    steps); returns the step's mean loss."""
    stage = plan.stage
    state.stage_step = step + 1
    state.global_step += 1
    mean_loss = sum(losses) / len(losses) if losses else float("nan")
    state.history.append(
        {
            "stage": stage.name,
            "step": step + 1,
            "global_step": state.global_step,
            "loss": mean_loss,
            "lr": lr,
            "samples_per_s": rate,
        }
    )
    if log_every and (step + 1) % log_every == 0:
        logger.info(
            "%s step %d/%d loss %.4f, %.2f samples/s", stage.name, step + 1, plan.total_steps, mean_loss, rate
        )
    return mean_loss


def run_stage(
    plan: StagePlan,
    accelerator: Accelerator,
    state: RunState,
    *,
    seed_order: Callable[[int, int], list[int]],
    failures: FailureLog,
    restore: Callable[[Optimisation], None] | None = None,
    on_step: Callable[[int, Optimisation], None] | None = None,
    num_workers: int = 0,
    show_progress: bool = True,
    log_every: int = 0,
) -> Optimisation:
    """Train ``plan.module`` for the stage's remaining steps; updates ``state`` in place.

    ``seed_order(num_items, num_samples)`` gives the stage's fixed sample order and
    ``plan.view(dataset, order, offset)`` the dataset read from that order at ``offset`` samples,
    so a run resumed at step k consumes exactly the batches an uninterrupted run would. Items that
    fail to load go to ``failures``. ``restore`` loads a checkpoint's optimizer state (resume);
    ``on_step`` is called after every optimizer step (checkpointing, validation). With
    ``ema_decay`` the module takes its weight average after the last step, before ``on_step``.
    """
    stage = plan.stage
    parameters = [p for p in plan.module.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError(f"stage {stage.name!r}: no trainable parameters")
    optimisation = _optimisation(plan, accelerator, parameters)
    scheduler, average = optimisation.scheduler, optimisation.average
    if restore is not None:
        restore(optimisation)
    per_step = stage.batch_size * stage.grad_accum
    start = state.stage_step
    order = seed_order(len(plan.dataset), plan.total_steps * per_step)
    loader = _stage_loader(plan, order, start * per_step, num_workers)
    module, optimizer_p, loader_p = accelerator.prepare(plan.module, optimisation.optimizer, loader)
    set_training_mode(module, stage.freeze_norm_statistics)
    batches = iter(loader_p)
    started = time.perf_counter()
    seen = 0
    with progress_bar(
        total=plan.total_steps,
        initial=start,
        description=stage.name,
        unit="step",
        enabled=show_progress and accelerator.is_local_main_process,
    ) as progress:
        for step in range(start, plan.total_steps):
            losses, samples = _accumulate(plan, accelerator, module, batches, failures, step)
            seen += samples
            if stage.max_grad_norm is not None and accelerator.sync_gradients:
                accelerator.clip_grad_norm_(parameters, stage.max_grad_norm)
            optimizer_p.step()
            scheduler.step()
            optimizer_p.zero_grad(set_to_none=True)
            if average is not None:
                average.update(plan.module)
                if step + 1 == plan.total_steps:
                    average.load_into(plan.module)
            rate = seen / max(time.perf_counter() - started, 1e-9)
            mean_loss = _record_step(plan, state, step, losses, rate, scheduler.get_last_lr()[0], log_every)
            progress.set_postfix(loss=f"{mean_loss:.4f}", samples_per_s=f"{rate:.1f}", refresh=False)
            progress.update()
            if on_step is not None:
                on_step(step + 1, optimisation)
                set_training_mode(module, stage.freeze_norm_statistics)
    elapsed = time.perf_counter() - started
    logger.info(
        "stage %s: %d steps, %d samples in %.1f s (%.2f samples/s)",
        stage.name,
        plan.total_steps - start,
        seen,
        elapsed,
        seen / max(elapsed, 1e-9),
    )
    plan.extra["elapsed_s"] = elapsed
    plan.extra["samples"] = seen
    return optimisation


def stage_summary(plan: StagePlan, output_dir: Path) -> dict:
    """Wall time and throughput of a finished stage (for the run summary and the model card)."""
    elapsed = plan.extra.get("elapsed_s", 0.0)
    samples = plan.extra.get("samples", 0)
    return {
        "stage": plan.stage.name,
        "steps": plan.total_steps,
        "samples": samples,
        "wall_s": round(elapsed, 1),
        "samples_per_s": round(samples / elapsed, 2) if elapsed else None,
    }
