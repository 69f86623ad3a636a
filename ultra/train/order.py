"""A fixed, seeded sample order for a whole stage, so a resumed run sees the same batches."""

from __future__ import annotations

import math

import torch


def stage_order(num_items: int, num_samples: int, seed: int) -> list[int]:
    """``num_samples`` item indices: one seeded permutation per epoch, concatenated and truncated.

    The order depends only on (number of items, seed), never on when the run was interrupted.
    """
    if num_items <= 0:
        raise ValueError("cannot order an empty dataset")
    epochs = math.ceil(num_samples / num_items)
    order: list[int] = []
    for epoch in range(epochs):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order.extend(torch.randperm(num_items, generator=generator).tolist())
    return order[:num_samples]


def total_optimizer_steps(num_items: int, epochs: float, batch_size: int, grad_accum: int) -> int:
    """Optimizer steps for ``epochs`` passes over ``num_items`` (at least one)."""
    return max(1, math.ceil(epochs * num_items / (batch_size * grad_accum)))
