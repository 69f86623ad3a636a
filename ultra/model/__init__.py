"""The vision-language model: config, modeling, processor, tokenizer, presets, loading/LoRA/merge."""

from ultra.model.configuration import DEFAULT_SYSTEM_PROMPT, UltraConfig
from ultra.model.loading import (
    LoraSettings,
    WeightsNotFoundError,
    apply_lora,
    build_config,
    build_model,
    load_adapter,
    load_model,
    merge_adapter,
    preset_with,
    processor_for,
    save_adapter,
    save_checkpoint,
)
from ultra.model.modeling import UltraForConditionalGeneration, UltraModel
from ultra.model.presets import Preset, get_preset, list_presets
from ultra.model.processor import IGNORE_INDEX, UltraProcessor, user_message
from ultra.model.tokenizer import build_tiny_tokenizer, bundled_tokenizer_dir, train_tokenizer

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "IGNORE_INDEX",
    "LoraSettings",
    "Preset",
    "UltraConfig",
    "UltraForConditionalGeneration",
    "UltraModel",
    "UltraProcessor",
    "WeightsNotFoundError",
    "apply_lora",
    "build_config",
    "build_model",
    "build_tiny_tokenizer",
    "bundled_tokenizer_dir",
    "get_preset",
    "list_presets",
    "load_adapter",
    "load_model",
    "merge_adapter",
    "preset_with",
    "processor_for",
    "save_adapter",
    "save_checkpoint",
    "train_tokenizer",
    "user_message",
]
