"""Scores -> weights (softmax over one report's images) -> which images to keep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field


class SelectionConfig(BaseModel):
    """``threshold``: keep images with weight >= beta / N. ``mass``: keep the fewest images whose
    weights cover a share ``mass`` of the candidates' total weight."""

    model_config = ConfigDict(extra="forbid")

    rule: Literal["threshold", "mass"] = "threshold"
    beta: float = Field(1.0, gt=0)
    mass: float = Field(0.9, gt=0, le=1)


def softmax_weights(scores: Sequence[float] | torch.Tensor, temperature: float = 1.0) -> list[float]:
    """``softmax(scores / temperature)`` in float64, so weights sum to 1 to double precision."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    values = torch.as_tensor(scores, dtype=torch.float64)
    if values.numel() == 0:
        return []
    return torch.softmax(values / temperature, dim=0).tolist()


def select(
    weights: Sequence[float],
    candidates: Sequence[int],
    config: SelectionConfig,
    tie_keys: Sequence[str] | None = None,
) -> set[int]:
    """Indices to keep among ``candidates`` (all indices when there are none); never empty unless
    ``weights`` is. ``tie_keys`` order equal weights by content, not by position."""
    if not weights:
        return set()
    pool = list(candidates) or list(range(len(weights)))
    keys = tie_keys or [""] * len(weights)
    ranked = sorted(pool, key=lambda index: (-weights[index], keys[index]))
    if config.rule == "threshold":
        cutoff = config.beta / len(weights)
        kept = {index for index in ranked if weights[index] >= cutoff}
    else:
        target = config.mass * sum(weights[index] for index in pool)
        kept, covered = set(), 0.0
        for index in ranked:
            if covered >= target * (1 - 1e-12):
                break
            kept.add(index)
            covered += weights[index]
    return kept or {ranked[0]}
