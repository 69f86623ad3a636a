"""LoRA layers added in place (parameter names keep their prefixes), merged or saved as an adapter."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from torch import nn

from ultra.train.config import LoraSettings

logger = logging.getLogger(__name__)

ADAPTER_NAME = "default"


def lora_target_pattern(settings: LoraSettings) -> str:
    """A regex over full module names: the target layers inside ``settings.module`` only."""
    names = "|".join(re.escape(name) for name in settings.target_modules)
    scope = rf"{re.escape(settings.module)}\..*\." if settings.module else r"(.*\.)?"
    return rf"{scope}({names})"


def add_lora(model: nn.Module, settings: LoraSettings) -> nn.Module:
    """Inject LoRA into the target layers of ``settings.module`` (the language model), in place:
    parameter names keep their prefixes, so stage patterns stay valid."""
    from peft import LoraConfig, inject_adapter_in_model

    if settings.module:
        try:
            model.get_submodule(settings.module)
        except AttributeError:
            raise ValueError(
                f"lora.module {settings.module!r} is not a submodule of {type(model).__name__}"
            ) from None
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=lora_target_pattern(settings),
        task_type="CAUSAL_LM",
    )
    inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
    return model


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


def save_adapter(model: nn.Module, folder: str | Path) -> Path:
    """Write the LoRA weights in PEFT's adapter layout (``adapter_config.json`` +
    ``adapter_model.safetensors``, keys under ``base_model.model.``) plus the other trained
    weights and their modules' buffers (projectors, fusion, BatchNorm statistics) in ``ultra.model``'s vision file, so ``load_model(base,
    adapter=folder)`` restores the trained model."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    from ultra.model.loading import VISION_TRAINABLES_FILE, trained_non_lora_state

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lora = get_peft_model_state_dict(model, adapter_name=ADAPTER_NAME)
    save_file(
        {f"base_model.model.{key}": value.detach().contiguous().cpu() for key, value in lora.items()},
        str(folder / "adapter_model.safetensors"),
    )
    config = model.peft_config[ADAPTER_NAME]
    config.save_pretrained(str(folder))
    others = trained_non_lora_state(model)
    if others:
        save_file(others, str(folder / VISION_TRAINABLES_FILE), metadata={"projectors_trained": "true"})
    logger.info("adapter saved to %s (%d LoRA tensors, %d other tensors)", folder, len(lora), len(others))
    return folder
