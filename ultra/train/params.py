"""Freeze everything, then unfreeze the parameters a stage names by pattern."""

from __future__ import annotations

import fnmatch
import logging

from torch import nn

logger = logging.getLogger(__name__)


class TrainableSelectionError(ValueError):
    """A stage's pattern matched no parameter (usually a typo or a renamed module)."""


def match_parameters(model: nn.Module, patterns: list[str], require_hits: bool = True) -> list[str]:
    """Names of the parameters matched by any fnmatch pattern; every pattern must match something
    unless ``require_hits`` is off (a finished stage whose LoRA layers were merged away)."""
    names = [name for name, _ in model.named_parameters()]
    selected: set[str] = set()
    for pattern in patterns:
        hits = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
        if not hits and require_hits:
            sample = ", ".join(names[:8])
            raise TrainableSelectionError(
                f"pattern {pattern!r} matches no parameter of {type(model).__name__} (names look like: {sample}, …)"
            )
        selected.update(hits)
    return [name for name in names if name in selected]


def apply_trainable(model: nn.Module, patterns: list[str]) -> list[str]:
    """Set ``requires_grad`` from the patterns; returns the trainable names (logged with counts)."""
    selected = set(match_parameters(model, patterns))
    trainable = 0
    total = 0
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in selected)
        total += parameter.numel()
        trainable += parameter.numel() if name in selected else 0
    logger.info(
        "training %d tensors, %s of %s parameters (%.1f%%)",
        len(selected),
        f"{trainable:,}",
        f"{total:,}",
        100.0 * trainable / max(total, 1),
    )
    return sorted(selected)
