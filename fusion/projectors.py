"""Projectors from an encoder's channels to the language model's hidden size, picked by name."""

from __future__ import annotations

from typing import Literal

from torch import nn

ProjectorKind = Literal["linear", "mlp2x_gelu"]


def build_projector(kind: ProjectorKind, in_features: int, out_features: int) -> nn.Module:
    """``linear`` or ``mlp2x_gelu`` (Linear-GELU-Linear, as LLaVA-1.5)."""
    if kind == "linear":
        return nn.Linear(in_features, out_features)
    if kind == "mlp2x_gelu":
        return nn.Sequential(
            nn.Linear(in_features, out_features), nn.GELU(), nn.Linear(out_features, out_features)
        )
    raise ValueError(f"unknown projector {kind!r}; choose 'linear' or 'mlp2x_gelu'")


def first_linear(projector: nn.Module) -> nn.Linear:
    """The layer that reads the encoder channels (used to report per-encoder shares)."""
    if isinstance(projector, nn.Linear):
        return projector
    return next(module for module in projector.modules() if isinstance(module, nn.Linear))
