"""LoRA, the one way: add in place, save as a PEFT adapter, load strictly, merge.

Loading (``load_model(base, adapter=...)``) and training (a stage with ``lora:``) both use these
functions. LoRA layers are injected in place (``peft.inject_adapter_in_model``), never by wrapping
the model in a ``PeftModel``: parameter names keep their prefixes, so a stage's ``train`` patterns,
its checkpoints and ``generate`` see the same model with or without an adapter. The adapter folder
is PEFT's own layout (``adapter_config.json`` + ``adapter_model.safetensors``, keys under
``base_model.model.``), so ``PeftModel.from_pretrained`` reads it too.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ultra.model.presets import QWEN_LORA_TARGETS

logger = logging.getLogger(__name__)

ADAPTER_NAME = "default"
ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
VISION_TRAINABLES_FILE = "vision_trainables.safetensors"
PEFT_KEY_PREFIX = "base_model.model."


class AdapterError(ValueError):
    """An adapter folder that does not fit the model (the message names the folder and the keys)."""


class LoraSettings(BaseModel):
    """LoRA on the language model; everything else a stage trains is chosen by its ``train`` patterns.

    Defaults, chosen on purpose: ``r=16, alpha=32`` (scale alpha/r = 2) is the LLaVA-1.5 LoRA
    ratio at a rank that fits a 0.5-1.5B LLM on one GPU, and what ``configs/small-zh-lora.yaml``
    uses; ``target_modules=None`` takes the model's own ``config.lora_target_modules`` (the preset
    decides: attention and MLP for Qwen2, since LoRA on every linear layer matches full fine-tuning
    more closely than attention alone), so the choice lives in the model's config, not in a name.
    ``dropout=0.05`` is PEFT's usual value for a few thousand examples.
    """

    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, gt=0)
    alpha: int = Field(default=32, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | None = Field(
        default=None, description="layer names inside `module`; None: the model config's lora_target_modules"
    )
    module: str = Field(default="model.language_model", description="submodule that receives the LoRA layers")


def target_modules(model: nn.Module, settings: LoraSettings) -> list[str]:
    """The layer names LoRA wraps: the settings', else the model config's, else Qwen2's linear layers."""
    if settings.target_modules:
        return list(settings.target_modules)
    from_config = getattr(getattr(model, "config", None), "lora_target_modules", None)
    return list(from_config or QWEN_LORA_TARGETS)


def lora_target_pattern(module: str, targets: list[str]) -> str:
    """A regex over full module names: the target layers inside ``module`` only (never the vision side)."""
    names = "|".join(re.escape(name) for name in targets)
    scope = rf"{re.escape(module)}\..*\." if module else r"(.*\.)?"
    return rf"{scope}({names})"


def has_lora(model: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return any(isinstance(module, LoraLayer) for module in model.modules())


def add_lora(model: nn.Module, settings: LoraSettings | None = None) -> nn.Module:
    """Inject LoRA layers into ``settings.module``'s target layers, in place; returns ``model``.

    PEFT leaves only the LoRA matrices trainable; a stage (or the caller) unfreezes anything else.
    """
    from peft import LoraConfig, inject_adapter_in_model

    settings = settings or LoraSettings()
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
        target_modules=lora_target_pattern(settings.module, target_modules(model, settings)),
        task_type="CAUSAL_LM",
    )
    inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
    if not has_lora(model):
        raise ValueError(f"LoRA targets {config.target_modules!r} match no layer of {type(model).__name__}")
    return model


def trained_non_lora_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers of every non-LoRA module that has a trainable parameter.

    Buffers matter: BatchNorm running statistics of an encoder trained beside LoRA move too, and
    an adapter without them would not reproduce the trained model.
    """
    state = {}
    for module_name, module in model.named_modules():
        if "lora_" in module_name or not any(p.requires_grad for p in module.parameters(recurse=False)):
            continue
        for name, tensor in module.state_dict().items():
            if "." not in name:
                state[f"{module_name}.{name}"] = tensor.detach().contiguous().cpu()
    return state


def save_adapter(model: nn.Module, folder: str | Path) -> Path:
    """The LoRA weights in PEFT's adapter layout, plus every other trained tensor and its module's
    buffers (projectors, fusion weights, BatchNorm statistics) in ``vision_trainables.safetensors``,
    so ``load_model(base, adapter=folder)`` restores the trained model exactly."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    if not has_lora(model):
        raise ValueError(f"{type(model).__name__} has no LoRA layers to save (add_lora first)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lora = get_peft_model_state_dict(model, adapter_name=ADAPTER_NAME)
    save_file(
        {PEFT_KEY_PREFIX + key: value.detach().contiguous().cpu() for key, value in lora.items()},
        str(folder / ADAPTER_WEIGHTS_FILE),
    )
    model.peft_config[ADAPTER_NAME].save_pretrained(str(folder))
    others = trained_non_lora_state(model)
    if others:
        config = getattr(model, "config", None)
        trained = bool(getattr(config, "projectors_trained", False)) or any(
            ".projectors." in key for key in others
        )
        metadata = {"projectors_trained": str(trained).lower()}
        save_file(others, str(folder / VISION_TRAINABLES_FILE), metadata=metadata)
    logger.info("adapter saved to %s (%d LoRA tensors, %d other tensors)", folder, len(lora), len(others))
    return folder


def load_adapter(model: nn.Module, folder: str | Path) -> nn.Module:
    """Add the adapter's LoRA layers to ``model`` in place and load its weights; returns ``model``.

    Strict: a key the model does not have, or a LoRA matrix the folder lacks, is an ``AdapterError``
    (an adapter for another architecture must not load half-way).
    """
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors import safe_open
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / ADAPTER_CONFIG_FILE).is_file() or not (folder / ADAPTER_WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"{folder}: not a LoRA adapter folder (needs {ADAPTER_CONFIG_FILE} and {ADAPTER_WEIGHTS_FILE})"
        )
    config = LoraConfig.from_pretrained(str(folder))
    config.inference_mode = False
    inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
    saved = load_file(str(folder / ADAPTER_WEIGHTS_FILE))
    stripped = {key.removeprefix(PEFT_KEY_PREFIX): value for key, value in saved.items()}
    result = set_peft_model_state_dict(model, stripped, adapter_name=ADAPTER_NAME)
    lora_keys = {name for name in model.state_dict() if "lora_" in name}
    missing = sorted(lora_keys & set(result.missing_keys))
    if result.unexpected_keys or missing:
        raise AdapterError(
            f"{folder}: adapter does not fit {type(model).__name__}: "
            f"unexpected {sorted(result.unexpected_keys)[:5]}, missing {missing[:5]}"
        )
    extra = folder / VISION_TRAINABLES_FILE
    if extra.is_file():
        state = load_file(str(extra))
        with safe_open(str(extra), framework="pt") as handle:
            metadata = handle.metadata() or {}
        unexpected = model.load_state_dict(state, strict=False).unexpected_keys
        if unexpected:
            raise AdapterError(f"{extra}: weights the model does not have: {', '.join(unexpected[:5])}")
        if metadata.get("projectors_trained") == "true" and hasattr(model, "config"):
            model.config.projectors_trained = True
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA layer into its base layer and put the base layer back, in place; the model
    then has its original parameter names and saves as a plain checkpoint. Returns ``model``."""
    from peft.tuners.lora import LoraLayer

    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
            merged += 1
    if not merged:
        raise ValueError(f"{type(model).__name__} has no LoRA layers to merge")
    for holder in model.modules():
        if "peft_config" in vars(holder):
            del holder.peft_config
    logger.info("merged %d LoRA layers", merged)
    return model
