"""Projectors from an encoder's channels to the language model's hidden size, picked by name
(``FusionConfig.projector`` names an entry of ``PROJECTORS``)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from fusion.registry import Registry

ProjectorKind = str
"""The name of an entry in ``PROJECTORS``."""


def _mlp2x_gelu(in_features: int, out_features: int) -> nn.Module:
    """Linear-GELU-Linear, as LLaVA-1.5."""
    return nn.Sequential(nn.Linear(in_features, out_features), nn.GELU(), nn.Linear(out_features, out_features))


PROJECTORS: Registry[Callable[[int, int], nn.Module]] = Registry(
    "projector", {"linear": nn.Linear, "mlp2x_gelu": _mlp2x_gelu}
)
"""Projector builders by name: ``builder(in_features, out_features)``."""


def build_projector(kind: ProjectorKind, in_features: int, out_features: int) -> nn.Module:
    """The projector ``kind`` of ``PROJECTORS``; an unknown name is the registry's error."""
    return PROJECTORS[kind](in_features, out_features)


def first_linear(projector: nn.Module) -> nn.Linear:
    """The layer that reads the encoder channels (used to report per-encoder shares)."""
    if isinstance(projector, nn.Linear):
        return projector
    return next(module for module in projector.modules() if isinstance(module, nn.Linear))
