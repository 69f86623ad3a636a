"""fusion: multi-encoder vision backbone (LLaVA-Ultra style), ultrasound preprocessing and video pooling."""

from fusion.config import FusionConfig, FusionMode
from fusion.encoders import (
    EncoderRegistry,
    EncoderSpec,
    EncoderTokens,
    ImageTransform,
    VisionEncoder,
    build_encoder,
    get_encoder_spec,
    list_encoders,
    register_encoder,
    resolve_spec,
)
from fusion.io import load_fusion, save_fusion
from fusion.model import VisionFusion, align_tokens
from fusion.projectors import build_projector

__all__ = [
    "EncoderRegistry",
    "EncoderSpec",
    "EncoderTokens",
    "FusionConfig",
    "FusionMode",
    "ImageTransform",
    "VisionEncoder",
    "VisionFusion",
    "align_tokens",
    "build_encoder",
    "build_projector",
    "get_encoder_spec",
    "list_encoders",
    "load_fusion",
    "register_encoder",
    "resolve_spec",
    "save_fusion",
]
