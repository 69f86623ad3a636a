"""The fast student: a small head over pooled backbone features, a small text encoder, scaled cosine."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from screening.text_encoder import ReportTokenizer, TextEncoder


class StudentConfig(BaseModel):
    """Everything needed to rebuild a student (saved as ``student.json`` beside its weights).

    ``backbone_source`` says where its backbone comes from, for callers that must build it: a
    model preset or folder whose vision tower it reads (``"tiny-zh"``), or a fusion folder saved
    inside the student folder (``"backbone"``). ``backbone_fingerprint`` pins the exact weights.
    """

    model_config = ConfigDict(extra="forbid")

    feature_size: int = Field(..., gt=0, description="hidden size of the fusion backbone")
    embed_dim: int = Field(128, gt=0)
    text_embed_dim: int = Field(64, gt=0)
    buckets: int = Field(8192, ge=2)
    max_tokens: int = Field(64, ge=1)
    initial_scale: float = Field(10.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1, description="on the pooled features, while training")
    backbone_fingerprint: str | None = None
    backbone_source: str | None = None


class ScreeningStudent(nn.Module):
    """``score(image_features, text_ids) = exp(log_scale) * cos(head(image), text_encoder(text))``."""

    max_scale = 100.0

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = ReportTokenizer(config.buckets, config.max_tokens)
        self.image_head = nn.Sequential(
            nn.LayerNorm(config.feature_size),
            nn.Dropout(config.dropout),
            nn.Linear(config.feature_size, config.embed_dim),
            nn.GELU(),
            nn.Linear(config.embed_dim, config.embed_dim),
        )
        self.text_encoder = TextEncoder(config.buckets, config.text_embed_dim, config.embed_dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(config.initial_scale)))

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=math.log(self.max_scale)).exp()

    def embed_images(self, features: torch.Tensor) -> torch.Tensor:
        """Unit vectors ``[N, embed_dim]`` from pooled backbone features ``[N, feature_size]``."""
        if features.shape[-1] != self.config.feature_size:
            raise ValueError(
                f"student expects backbone features of size {self.config.feature_size}, "
                f"got {features.shape[-1]} (a student trained on another backbone?)"
            )
        return F.normalize(self.image_head(features), dim=-1)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Unit vectors ``[B, embed_dim]``."""
        device = self.log_scale.device
        return F.normalize(self.text_encoder(self.tokenizer.batch(texts).to(device)), dim=-1)

    def scores(self, features: torch.Tensor, text: str) -> torch.Tensor:
        """Relevance of each of one report's images, ``[N]``."""
        features = features.to(self.log_scale.device)
        return self.scale * (self.embed_images(features) @ self.embed_texts([text])[0])
