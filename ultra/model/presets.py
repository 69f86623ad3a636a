"""Model presets: named architectures, from the offline ``tiny-zh`` to hub-weight Qwen2.5 models.

A preset fixes the encoders, fusion, LLM shape and tokenizer. ``tiny-zh`` is the embedded default
(trained from scratch by ``ultra train``; its weights live in ``ultra/weights/ultra-tiny-zh``);
``small-zh``/``base-zh``/``large-zh`` pair the paper's CLIP ViT + SAM ViT with Qwen2.5-Instruct
LLMs by hub name. ``debug-tiny`` is a random-init toy for tests.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fusion import ENCODERS, EncoderSpec, FusionConfig
from fusion.registry import Registry

logger = logging.getLogger(__name__)

QWEN_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class Preset(BaseModel):
    """What a named model is made of; ``text_config`` is the LLM shape (hub presets: its known shape)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    encoders: list[EncoderSpec]
    grid: tuple[int, int]
    fusion_mode: str = "weighted"  # a fusion.modes.FUSION_MODES name, checked by FusionConfig
    projector: str = "mlp2x_gelu"  # a fusion.projectors.PROJECTORS name, checked by FusionConfig
    freeze_encoders: bool = True
    text_config: dict[str, Any]
    llm_hub_name: str | None = None
    tokenizer: Literal["bundled-tiny-zh", "llm"] = "llm"
    video_num_frames: int = 8
    video_sampling: Literal["uniform", "scene"] = "uniform"
    lora_target_modules: list[str] = Field(default_factory=lambda: list(QWEN_LORA_TARGETS))
    crop_scan_region: bool = False
    decision_classes: list[str] = Field(default_factory=list)
    embedded: bool = False

    def fusion_config(self) -> FusionConfig:
        return FusionConfig(
            encoders=list(self.encoders),
            hidden_size=int(self.text_config["hidden_size"]),
            grid=self.grid,
            mode=self.fusion_mode,
            projector=self.projector,
            freeze_encoders=self.freeze_encoders,
            decision_classes=list(self.decision_classes),
        )

    def hub_downloads(self) -> list[str]:
        """Every hub repository this preset's weights come from (LLM first, then encoders; an
        encoder whose weights come from an installed package or a local file downloads nothing)."""
        import timm

        names = [self.llm_hub_name] if self.llm_hub_name else []
        for spec in self.encoders:
            if spec.pretrained and spec.checkpoint_path is None and spec.weights is None:
                cfg = timm.models.get_pretrained_cfg(spec.timm_name)
                names.append(cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else f"timm/{spec.timm_name}")
        return names


def _sized(name: str, input_size: int) -> EncoderSpec:
    return ENCODERS[name].model_copy(update={"input_size": input_size})


def _qwen2_shape(hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int, vocab: int) -> dict:
    return {
        "model_type": "qwen2",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": intermediate,
        "vocab_size": vocab,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    }


def _builtin_presets() -> list[Preset]:
    tiny_text = _qwen2_shape(hidden=256, layers=4, heads=4, kv_heads=2, intermediate=768, vocab=8000)
    tiny_text["max_position_embeddings"] = 1024
    debug_text = _qwen2_shape(hidden=32, layers=2, heads=4, kv_heads=2, intermediate=64, vocab=8000)
    debug_text["max_position_embeddings"] = 512
    clip_sam = [ENCODERS["clip-vit-l-336"], ENCODERS["sam-vit-b"]]
    presets = [
        Preset(
            name="tiny-zh",
            description="offline default: resnet10t + convnext_atto (128 px, from scratch), 4x4 tokens, "
            "4-layer Qwen2-shaped LLM (hidden 256), 8k byte-level BPE",
            encoders=[_sized("resnet10t-128", 128), _sized("convnext-atto", 128)],
            grid=(4, 4),
            freeze_encoders=False,
            text_config=tiny_text,
            tokenizer="bundled-tiny-zh",
            video_num_frames=4,
            embedded=True,
        ),
        Preset(
            name="debug-tiny",
            description="random-init toy for tests (32 px encoders, 2x2 tokens, hidden 32)",
            encoders=[ENCODERS["tiny-cnn"], ENCODERS["tiny-convnext"]],
            grid=(2, 2),
            freeze_encoders=False,
            text_config=debug_text,
            tokenizer="bundled-tiny-zh",
            video_num_frames=2,
        ),
        Preset(
            name="small-zh",
            description="CLIP ViT-L/14-336 + SAM ViT-B, 12x12 tokens, Qwen2.5-0.5B-Instruct",
            encoders=clip_sam,
            grid=(12, 12),
            text_config=_qwen2_shape(896, 24, 14, 2, 4864, 151936),
            llm_hub_name="Qwen/Qwen2.5-0.5B-Instruct",
        ),
        Preset(
            name="base-zh",
            description="CLIP ViT-L/14-336 + SAM ViT-B, 12x12 tokens, Qwen2.5-1.5B-Instruct",
            encoders=clip_sam,
            grid=(12, 12),
            text_config=_qwen2_shape(1536, 28, 12, 2, 8960, 151936),
            llm_hub_name="Qwen/Qwen2.5-1.5B-Instruct",
        ),
        Preset(
            name="large-zh",
            description="CLIP ViT-L/14-336 + SAM ViT-B, 24x24 tokens, Qwen2.5-7B-Instruct",
            encoders=clip_sam,
            grid=(24, 24),
            text_config={**_qwen2_shape(3584, 28, 28, 4, 18944, 152064), "tie_word_embeddings": False},
            llm_hub_name="Qwen/Qwen2.5-7B-Instruct",
        ),
    ]
    return presets


PRESETS: Registry[Preset] = Registry("model preset", {preset.name: preset for preset in _builtin_presets()})
"""The model presets by name, built once."""


def list_presets() -> list[str]:
    """The preset names, sorted."""
    return PRESETS.names()


def get_preset(name: str) -> Preset:
    """The preset ``name``; an unknown name is the registry's error (a ``KeyError``)."""
    return PRESETS[name]
