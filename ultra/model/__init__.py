"""The vision-language model: config, modeling, processor, tokenizer, presets, loading/LoRA/merge."""

from ultra.model.configuration import DEFAULT_SYSTEM_PROMPT, UltraConfig
from ultra.model.loading import (
    WeightsNotFoundError,
    build_config,
    build_model,
    load_model,
    preset_with,
    processor_for,
    save_checkpoint,
)
from ultra.model.lora import (
    AdapterError,
    LoraSettings,
    add_lora,
    has_lora,
    load_adapter,
    merge_lora,
    save_adapter,
)
from ultra.model.modeling import UltraForConditionalGeneration, UltraModel
from ultra.model.presets import Preset, get_preset, list_presets
from ultra.model.processor import IGNORE_INDEX, UltraProcessor, chat_messages, user_message
from ultra.model.tokenizer import build_tiny_tokenizer, bundled_tokenizer_dir, train_tokenizer

__all__ = [
    "AdapterError",
    "DEFAULT_SYSTEM_PROMPT",
    "IGNORE_INDEX",
    "LoraSettings",
    "Preset",
    "UltraConfig",
    "UltraForConditionalGeneration",
    "UltraModel",
    "UltraProcessor",
    "WeightsNotFoundError",
    "add_lora",
    "build_config",
    "build_model",
    "build_tiny_tokenizer",
    "chat_messages",
    "bundled_tokenizer_dir",
    "get_preset",
    "has_lora",
    "list_presets",
    "load_adapter",
    "load_model",
    "merge_lora",
    "preset_with",
    "processor_for",
    "save_adapter",
    "save_checkpoint",
    "train_tokenizer",
    "user_message",
]
