"""Fusion modes: how a ``VisionFusion`` turns each encoder's aligned tokens into one grid.

A mode is a stateless rule: it says which projectors and mixing parameters the fusion needs (they
live on the ``VisionFusion`` itself, so saved weights keep their names) and how they combine the
encoders' tokens. ``FusionConfig.mode`` names an entry of ``FUSION_MODES``; a new mode is a new
entry, never a new branch in the model.
"""

from __future__ import annotations

import abc
from typing import Protocol

import torch
from torch import nn

from fusion.projectors import build_projector, first_linear
from fusion.registry import Registry


class VisionFusion(Protocol):
    """What a rule reads of the ``fusion.model.VisionFusion`` it is handed: the parts it built."""

    encoders: nn.ModuleList
    projectors: nn.ModuleList
    fusion_logits: nn.Parameter | None
    token_gates: nn.ModuleList | None


class FusionRule(abc.ABC):
    """One fusion mode; the ``VisionFusion`` it is handed holds ``projectors``, ``fusion_logits``
    and ``token_gates`` as this rule built them."""

    name: str = ""

    def projectors(self, kind: str, channels: list[int], hidden: int) -> nn.ModuleList:
        """One projector per encoder (``channels``: each encoder's width)."""
        return nn.ModuleList(build_projector(kind, width, hidden) for width in channels)

    def fusion_logits(self, count: int) -> nn.Parameter | None:
        """Global per-encoder mixing logits (zeros: equal weights), none for a single encoder."""
        return nn.Parameter(torch.zeros(count)) if count > 1 else None

    def token_gates(self, count: int, hidden: int) -> nn.ModuleList | None:
        """Per-token gates on each encoder's projected tokens; none by default."""
        return None

    def project_each(self, fusion: VisionFusion, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each encoder's projected tokens ``H_i = P_i(F_i(X))``, ``[B, T, hidden]``."""
        return [projector(f) for projector, f in zip(fusion.projectors, features, strict=True)]

    def mixing_weights(self, fusion: VisionFusion, projected: list[torch.Tensor]) -> torch.Tensor:
        """``[N]`` global weights, or ``[B, T, N]`` when they vary per token."""
        assert fusion.fusion_logits is not None
        return torch.softmax(fusion.fusion_logits, dim=0)

    def fuse(self, fusion: VisionFusion, features: list[torch.Tensor]) -> torch.Tensor:
        """The fused grid ``[B, T, hidden]`` from each encoder's aligned tokens ``[B, T, C_i]``."""
        projected = self.project_each(fusion, features)
        if fusion.fusion_logits is None:
            return projected[0]
        weights = self.mixing_weights(fusion, projected)
        fused = torch.zeros_like(projected[0])
        for index, tokens in enumerate(projected):
            weight = weights[index] if weights.dim() == 1 else weights[..., index : index + 1]
            fused = fused + weight * tokens
        return fused

    @abc.abstractmethod
    def encoder_shares(self, fusion: VisionFusion) -> list[float]:
        """Each encoder's share of the fused tokens (sums to 1), for inspection."""


class Weighted(FusionRule):
    """LLaVA-Ultra's ``Hv = α·P1(F1(X)) + (1−α)·P2(F2(X))``: one softmax weight per encoder."""

    name = "weighted"

    def encoder_shares(self, fusion: VisionFusion) -> list[float]:
        if fusion.fusion_logits is None:
            return [1.0]
        return torch.softmax(fusion.fusion_logits.float(), dim=0).tolist()


class TokenGate(Weighted):
    """The weighted logits plus a per-token gate from each encoder's projected features,
    zero-initialised so training starts from ``weighted``. Its shares are the global part."""

    name = "token_gate"

    def token_gates(self, count: int, hidden: int) -> nn.ModuleList | None:
        if count < 2:
            return None
        gates = nn.ModuleList(nn.Linear(hidden, 1, bias=False) for _ in range(count))
        for gate in gates:
            nn.init.zeros_(gate.weight)
        return gates

    def mixing_weights(self, fusion: VisionFusion, projected: list[torch.Tensor]) -> torch.Tensor:
        assert fusion.fusion_logits is not None and fusion.token_gates is not None
        gates = torch.cat([gate(h) for gate, h in zip(fusion.token_gates, projected, strict=True)], dim=-1)
        return torch.softmax(gates + fusion.fusion_logits, dim=-1)


class Concat(FusionRule):
    """Aligned encoder channels concatenated, then one joint projector. Its shares are each
    encoder's part of the projector's input weight norm."""

    name = "concat"

    def projectors(self, kind: str, channels: list[int], hidden: int) -> nn.ModuleList:
        return nn.ModuleList([build_projector(kind, sum(channels), hidden)])

    def fusion_logits(self, count: int) -> nn.Parameter | None:
        return None

    def project_each(self, fusion: VisionFusion, features: list[torch.Tensor]) -> list[torch.Tensor]:
        raise ValueError("project_each: mode 'concat' has one joint projector, not one per encoder")

    def fuse(self, fusion: VisionFusion, features: list[torch.Tensor]) -> torch.Tensor:
        return fusion.projectors[0](torch.cat(features, dim=-1))

    def encoder_shares(self, fusion: VisionFusion) -> list[float]:
        if len(fusion.encoders) < 2:
            return [1.0]
        weight = first_linear(fusion.projectors[0]).weight.float()
        norms, start = [], 0
        for encoder in fusion.encoders:
            norms.append(weight[:, start : start + encoder.num_channels].norm().item())
            start += encoder.num_channels
        return [norm / sum(norms) for norm in norms]


FUSION_MODES: Registry[FusionRule] = Registry(
    "fusion mode", {rule.name: rule for rule in (Weighted(), TokenGate(), Concat())}
)
"""The fusion modes by name (``FusionConfig.mode``)."""
