"""VisionFusion: N encoders, a projector each, token grids aligned, fused by a learnable rule.

With two encoders and ``mode="weighted"`` this is exactly LLaVA-Ultra's
``Hv = α·P1(F1(X)) + (1−α)·P2(F2(X))`` with ``α = softmax(logits)[0]``, initialised to 0.5.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from fusion.config import FusionConfig
from fusion.encoders import EncoderTokens, VisionEncoder
from fusion.modes import FUSION_MODES

logger = logging.getLogger(__name__)


def align_tokens(tokens: EncoderTokens, grid: tuple[int, int], add_global: bool) -> torch.Tensor:
    """Pool a ``[B, C, h, w]`` map to ``grid`` by adaptive average pooling of the 2-D token map.

    Pooling averages neighbouring tokens when the encoder's grid is finer than the target, and
    repeats tokens when it is coarser, so every encoder lands on the same positions. With
    ``add_global`` a leading global token is prepended: the mean of the encoder's prefix tokens
    if it kept them, else the mean of its spatial tokens. Returns ``[B, T, C]``.
    """
    pooled = F.adaptive_avg_pool2d(tokens.spatial, grid).flatten(2).transpose(1, 2)
    if not add_global:
        return pooled
    summary = tokens.prefix.mean(dim=1) if tokens.prefix is not None else tokens.spatial.mean(dim=(2, 3))
    return torch.cat([summary.unsqueeze(1), pooled], dim=1)


def _is_frozen(module: nn.Module) -> bool:
    """Frozen = no trainable parameter; read from the module so unfreezing later just works."""
    return not any(parameter.requires_grad for parameter in module.parameters())


class VisionFusion(nn.Module):
    """Fuse several vision encoders into one token sequence ``[B, num_tokens, hidden_size]``.

    ``config.mode`` names the rule in ``fusion.modes.FUSION_MODES`` that builds the projectors
    and mixing parameters and fuses with them: ``weighted``, ``token_gate`` or ``concat``.
    ``load_pretrained=False`` skips hub/checkpoint loading, for when the weights
    come from a saved fusion instead.
    """

    def __init__(self, config: FusionConfig, load_pretrained: bool = True) -> None:
        super().__init__()
        self.config = config.resolved()
        specs = self.config.resolved_encoders()
        if not load_pretrained:
            specs = [spec.without_weights() for spec in specs]
        self.encoder_names = [spec.name for spec in specs]
        self.encoders = nn.ModuleList(VisionEncoder(spec) for spec in specs)
        self.grid = tuple(self.config.grid)
        self.has_global_token = any(encoder.keeps_prefix_tokens for encoder in self.encoders)
        hidden, count = self.config.hidden_size, len(self.encoders)
        self.rule = FUSION_MODES[self.config.mode]
        self.projectors = self.rule.projectors(
            self.config.projector, [encoder.num_channels for encoder in self.encoders], hidden
        )
        self.fusion_logits = self.rule.fusion_logits(count)
        self.token_gates = self.rule.token_gates(count, hidden)
        self.decision_classes = list(self.config.decision_classes)
        self.decision_head = None
        if self.decision_classes:
            self.decision_head = nn.Linear(hidden, len(self.decision_classes))
            # one fixed orthogonal code per class, unit RMS per channel: a buffer, so no stage can
            # train it (the LLM learns to read the codes, not the other way round)
            codes = torch.empty(hidden, len(self.decision_classes))
            nn.init.orthogonal_(codes)
            self.register_buffer("decision_codes", codes.T * hidden**0.5, persistent=True)
        if self.config.freeze_encoders:
            self.encoders.requires_grad_(False)
            self.encoders.eval()

    @property
    def num_tokens(self) -> int:
        """Tokens per image: ``grid[0] * grid[1]`` (+1 global token if an encoder keeps its CLS,
        +1 decision token with ``decision_classes``)."""
        return self.grid[0] * self.grid[1] + int(self.has_global_token) + int(bool(self.decision_classes))

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def train(self, mode: bool = True) -> VisionFusion:
        """As ``nn.Module.train``, but frozen encoders stay in eval mode (BatchNorm statistics
        and dropout of a frozen encoder must not change)."""
        super().train(mode)
        for encoder in self.encoders:
            if _is_frozen(encoder):
                encoder.eval()
        return self

    def _reference_parameter(self) -> torch.Tensor:
        return next(self.projectors.parameters())

    def preprocess(self, images: list[Image.Image]) -> list[torch.Tensor]:
        """One float32 CPU batch ``[B, 3, H_i, W_i]`` per encoder, from each encoder's data config."""
        return [encoder.transform(images) for encoder in self.encoders]

    def blank_pixel_values(self, batch: int) -> list[torch.Tensor]:
        """The blank image: zeros after normalisation, i.e. every encoder's mean colour."""
        reference = self._reference_parameter()
        size = [encoder.spec.input_size for encoder in self.encoders]
        return [torch.zeros(batch, 3, s, s, device=reference.device, dtype=reference.dtype) for s in size]

    def _encode(self, encoder: VisionEncoder, pixel_values: torch.Tensor) -> torch.Tensor:
        parameter = next(encoder.parameters())
        pixel_values = pixel_values.to(device=parameter.device, dtype=parameter.dtype)
        if _is_frozen(encoder):
            with torch.no_grad():
                tokens = encoder(pixel_values)
        else:
            tokens = encoder(pixel_values)
        return align_tokens(tokens, self.grid, self.has_global_token)

    def _check_inputs(self, pixel_values: list[torch.Tensor]) -> None:
        if len(pixel_values) != len(self.encoders):
            raise ValueError(
                f"VisionFusion has {len(self.encoders)} encoders ({', '.join(self.encoder_names)}) "
                f"but got {len(pixel_values)} pixel tensors"
            )
        batches = {int(p.shape[0]) for p in pixel_values}
        if len(batches) != 1:
            raise ValueError(f"every encoder needs the same batch size, got {sorted(batches)}")

    def encode_each(self, pixel_values: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each encoder's aligned tokens ``[B, T, C_i]`` before projection."""
        self._check_inputs(pixel_values)
        return [self._encode(encoder, p) for encoder, p in zip(self.encoders, pixel_values, strict=True)]

    def project_each(self, pixel_values: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each encoder's projected tokens ``H_i = P_i(F_i(X))``, ``[B, T, hidden]``."""
        return self.rule.project_each(self, self.encode_each(pixel_values))

    def token_weights(self, pixel_values: list[torch.Tensor]) -> torch.Tensor:
        """Per-token encoder weights ``[B, T, N]`` (constant over tokens unless mode is token_gate)."""
        projected = self.project_each(pixel_values)
        batch, length, _ = projected[0].shape
        if self.fusion_logits is None:
            return torch.ones(batch, length, 1, device=projected[0].device)
        weights = self.rule.mixing_weights(self, projected)
        return weights.expand(batch, length, -1) if weights.dim() == 1 else weights

    def forward(self, pixel_values: list[torch.Tensor], decision: bool = True) -> torch.Tensor:
        """The tokens the LLM reads: the fused grid ``[B, grid cells (+ global), hidden]``, then the
        decision token if the tower has one and ``decision`` (classifiers and the screening
        student read the grid alone). Always through ``forward``, so wrappers such as FSDP see
        every use of the weights."""
        fused = self.fuse_features(self.encode_each(pixel_values))
        return self.with_decision(fused) if decision else fused

    def fuse_features(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The fused grid from tokens ``encode_each`` already produced (frozen encoders can then
        run once per image)."""
        return self.rule.fuse(self, features)

    def decision_logits(self, fused: torch.Tensor) -> torch.Tensor:
        """``[B, classes]`` from fused grid tokens ``[B, T, hidden]`` (their mean, through the head)."""
        if self.decision_head is None:
            raise ValueError("this vision tower has no decision head (its decision_classes are empty)")
        return self.decision_head(fused.mean(dim=1))

    def with_decision(self, fused: torch.Tensor) -> torch.Tensor:
        """Fused grid tokens, plus one token of class codes weighted by the class probabilities
        when the tower has a decision head."""
        if self.decision_head is None:
            return fused
        probabilities = torch.softmax(self.decision_logits(fused).float(), dim=-1)
        token = (probabilities @ self.decision_codes.float()).to(fused.dtype)
        return torch.cat([fused, token.unsqueeze(1)], dim=1)

    @torch.no_grad()
    def fusion_weights(self) -> dict[str, float]:
        """Current per-encoder weights (sum to 1), for inspection and the demo: the mode's
        ``encoder_shares`` (``weighted``: softmax of the logits, α for two encoders)."""
        return dict(zip(self.encoder_names, self.rule.encoder_shares(self), strict=True))
