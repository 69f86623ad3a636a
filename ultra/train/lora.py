"""LoRA layers added in place (parameter names keep their prefixes), merged or saved as an adapter."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from torch import nn

from ultra.train.config import LoraSettings

logger = logging.getLogger(__name__)

ADAPTER_NAME = "default"


def add_lora(model: nn.Module, settings: LoraSettings) -> nn.Module:
    """Inject LoRA into ``settings.module`` of ``model`` (the language model), in place."""
    from peft import LoraConfig, inject_adapter_in_model

    try:
        target = model.get_submodule(settings.module) if settings.module else model
    except AttributeError:
        raise ValueError(
            f"lora.module {settings.module!r} is not a submodule of {type(model).__name__}"
        ) from None
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
    )
    inject_adapter_in_model(config, target, adapter_name=ADAPTER_NAME)
    return target


def has_lora(model: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return any(isinstance(module, LoraLayer) for module in model.modules())


def merge_lora(model: nn.Module) -> int:
    """Fold every LoRA layer into its base layer and put the base layer back; returns the count."""
    from peft.tuners.lora import LoraLayer

    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
            merged += 1
    for holder in model.modules():
        if "peft_config" in vars(holder):
            del holder.peft_config
    logger.info("merged %d LoRA layers", merged)
    return merged


def save_adapter(model: nn.Module, settings: LoraSettings, folder: str | Path) -> Path:
    """Write the LoRA weights in PEFT's adapter layout (adapter_config.json + safetensors)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    target = model.get_submodule(settings.module) if settings.module else model
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().contiguous() for key, value in get_peft_model_state_dict(target).items()}
    save_file(state, str(folder / "adapter_model.safetensors"))
    config = target.peft_config[ADAPTER_NAME].to_dict()
    config = {key: (sorted(value) if isinstance(value, set) else value) for key, value in config.items()}
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=1, default=str), encoding="utf-8")
    return folder
