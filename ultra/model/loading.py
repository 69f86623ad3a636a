"""Building, loading, LoRA and merging: every way to get a ``(model, processor)`` pair.

``load_model`` is the one entry point: a checkpoint folder or a preset name, optionally with a
LoRA adapter, optionally merged. Checkpoints are safetensors only; nothing is ever unpickled.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from fusion import FusionConfig, VisionFusion
from fusion.video import video_token_count
from ultra.logs import log_duration
from ultra.model.configuration import UltraConfig
from ultra.model.modeling import UltraForConditionalGeneration
from ultra.model.presets import QWEN_LORA_TARGETS, Preset, get_preset, list_presets
from ultra.model.processor import UltraProcessor
from ultra.model.tokenizer import IMAGE_TOKEN, VIDEO_TOKEN, add_multimodal_tokens, bundled_tokenizer_dir
from ultra.resources import embedded_model_dir

logger = logging.getLogger(__name__)

VISION_TRAINABLES_FILE = "vision_trainables.safetensors"


class WeightsNotFoundError(FileNotFoundError):
    """Weights that must be downloaded or trained first; the message says which and where."""


class LoraSettings(BaseModel):
    """LoRA on the LLM; the fusion projectors/weights (and unfrozen encoders) train in full."""

    model_config = ConfigDict(extra="forbid")

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | None = None
    train_vision: bool = True


def _download_message(preset: Preset, reason: str) -> str:
    names = preset.hub_downloads()
    lines = "\n".join(f"  huggingface-cli download {name}" for name in names)
    return (
        f"preset {preset.name!r}: {reason}\n"
        f"Download these repositories on a machine with hub access:\n{lines}\n"
        "They must end up in the Hugging Face cache (~/.cache/huggingface/hub, or $HF_HOME/hub); copy that "
        "folder to this machine if it has no network. Then run again (HF_HUB_OFFLINE=1 is fine)."
    )


def processor_for(model: UltraForConditionalGeneration, tokenizer: PreTrainedTokenizerBase) -> UltraProcessor:
    """The processor matching a model: its tokenizer and its encoders' own image transforms."""
    transforms = [encoder.transform for encoder in model.vision_tower.encoders]
    return UltraProcessor(tokenizer, transforms, model.config)


def load_preset_tokenizer(preset: Preset) -> PreTrainedTokenizerBase:
    if preset.tokenizer == "bundled-tiny-zh":
        return AutoTokenizer.from_pretrained(str(bundled_tokenizer_dir()))
    try:
        tokenizer = AutoTokenizer.from_pretrained(preset.llm_hub_name)
    except OSError as error:
        raise WeightsNotFoundError(_download_message(preset, f"tokenizer not found ({error})")) from None
    add_multimodal_tokens(tokenizer)
    return tokenizer


def tokens_per_image(fusion_config: FusionConfig) -> int:
    """How many tokens the fusion gives per image, found by building it on the meta device (free)."""
    with torch.device("meta"):
        return VisionFusion(fusion_config, load_pretrained=False).num_tokens


def build_config(preset: Preset, tokenizer: PreTrainedTokenizerBase) -> UltraConfig:
    """The ``UltraConfig`` of a preset with this tokenizer's special-token ids."""
    fusion_config = preset.fusion_config().resolved()
    text = dict(preset.text_config)
    text["vocab_size"] = max(int(text["vocab_size"]), len(tokenizer))
    text["eos_token_id"] = tokenizer.eos_token_id
    text["pad_token_id"] = tokenizer.pad_token_id
    per_image = tokens_per_image(fusion_config)
    return UltraConfig(
        text_config=text,
        vision=fusion_config.model_dump(mode="json"),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        video_token_id=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        tokens_per_image=per_image,
        video_num_frames=preset.video_num_frames,
        video_tokens=video_token_count(per_image, preset.video_num_frames),
        video_sampling=preset.video_sampling,
        lora_target_modules=list(preset.lora_target_modules),
        crop_scan_region=preset.crop_scan_region,
        projectors_trained=False,
    )


def _load_hub_llm(model: UltraForConditionalGeneration, preset: Preset) -> None:
    from transformers import AutoModelForCausalLM

    try:
        llm = AutoModelForCausalLM.from_pretrained(preset.llm_hub_name, dtype=torch.float32)
    except OSError as error:
        raise WeightsNotFoundError(_download_message(preset, f"LLM weights not found ({error})")) from None
    if llm.config.hidden_size != model.config.text_config.hidden_size:
        raise ValueError(
            f"preset {preset.name!r}: {preset.llm_hub_name} has hidden size {llm.config.hidden_size}, "
            f"the preset expects {model.config.text_config.hidden_size}"
        )
    embeddings = llm.get_input_embeddings().weight
    model.resize_token_embeddings(max(embeddings.shape[0], model.config.text_config.vocab_size))
    state = llm.model.state_dict()
    rows = embeddings.shape[0]
    target = model.language_model.state_dict()
    state["embed_tokens.weight"] = torch.cat([embeddings.detach(), target["embed_tokens.weight"][rows:]])
    model.language_model.load_state_dict(state)
    if not model.config.tie_word_embeddings:
        head = llm.lm_head.weight.detach()
        model.lm_head.weight.data[:rows] = head


def _load_pretrained_encoders(model: UltraForConditionalGeneration, preset: Preset) -> None:
    try:
        tower = VisionFusion(FusionConfig.model_validate(model.config.vision), load_pretrained=True)
    except (RuntimeError, OSError) as error:
        raise WeightsNotFoundError(
            _download_message(preset, f"encoder weights not found ({error})")
        ) from None
    model.model.vision_tower = tower


def preset_with(preset_name: str, overrides: dict | None = None) -> Preset:
    """A preset with some fields replaced (e.g. ``{"grid": [6, 6]}``); bad fields raise ``ConfigError``."""
    from ultra.config_io import parse_config

    preset = get_preset(preset_name)
    if not overrides:
        return preset
    return parse_config(
        {**preset.model_dump(), **overrides}, Preset, source=f"preset {preset_name!r} overrides"
    )


def build_model(
    preset_name: str,
    pretrained: bool = True,
    dtype: torch.dtype = torch.float32,
    overrides: dict | None = None,
) -> tuple[UltraForConditionalGeneration, UltraProcessor]:
    """A new model from a preset: hub LLM/encoder weights when ``pretrained``, projectors untrained.

    This is where training from scratch starts (``tiny-zh`` with ``pretrained=False``).
    """
    preset = preset_with(preset_name, overrides)
    tokenizer = load_preset_tokenizer(preset)
    model = UltraForConditionalGeneration(build_config(preset, tokenizer))
    if pretrained and preset.llm_hub_name:
        _load_hub_llm(model, preset)
    if pretrained and any(spec.pretrained or spec.checkpoint_path for spec in preset.encoders):
        _load_pretrained_encoders(model, preset)
    model = model.to(dtype)
    return model, processor_for(model, tokenizer)


def save_checkpoint(
    model: UltraForConditionalGeneration, processor: UltraProcessor, directory: str | Path
) -> Path:
    """A self-contained folder: config.json, model.safetensors, tokenizer files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    processor.save_pretrained(directory)
    return directory


def _is_checkpoint(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def _load_checkpoint(path: Path, dtype: torch.dtype) -> tuple[UltraForConditionalGeneration, UltraProcessor]:
    if not any(path.glob("*.safetensors")):
        raise WeightsNotFoundError(
            f"{path}: no *.safetensors weights (only safetensors checkpoints are loaded)"
        )
    model = UltraForConditionalGeneration.from_pretrained(path, dtype=dtype, use_safetensors=True)
    try:
        # the LLM's config, so transformers does not try to read our composite config as a tokenizer hint
        tokenizer = AutoTokenizer.from_pretrained(str(path), config=model.config.text_config)
    except (OSError, ValueError) as error:
        raise WeightsNotFoundError(f"{path}: no usable tokenizer files ({error})") from None
    return model, processor_for(model, tokenizer)


def _embedded_missing_message(folder: Path) -> str:
    return (
        f"the embedded tiny-zh model has not been trained yet (no weights in {folder}). Train it with the "
        "training pipeline (`ultra train`, which starts from load_model('tiny-zh', from_scratch=True)), or pass --model PATH to a checkpoint folder, or a hub preset "
        f"({', '.join(name for name in list_presets() if name != 'tiny-zh')})."
    )


@log_duration("loading the model")
def load_model(
    path_or_preset: str | Path,
    adapter: str | Path | None = None,
    merge: bool = False,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    from_scratch: bool = False,
    overrides: dict | None = None,
) -> tuple[torch.nn.Module, UltraProcessor]:
    """Load a checkpoint folder or a preset, optionally with a LoRA adapter, optionally merged.

    ``tiny-zh`` means the embedded model; hub presets build from hub weights (projectors untrained);
    ``debug-tiny`` builds a random toy. ``from_scratch`` (implied by preset ``overrides``) builds the
    preset's architecture anew instead of loading the embedded checkpoint: the start of training.
    ``merge=True`` folds the adapter into plain weights.
    """
    path = Path(path_or_preset)
    if _is_checkpoint(path):
        if overrides:
            raise ValueError(f"{path}: preset overrides only apply to preset names, not checkpoint folders")
        model, processor = _load_checkpoint(path, dtype)
    elif str(path_or_preset) in list_presets():
        preset = get_preset(str(path_or_preset))
        if from_scratch or overrides:
            model, processor = build_model(
                preset.name, pretrained=preset.llm_hub_name is not None, dtype=dtype, overrides=overrides
            )
        elif preset.embedded:
            folder = embedded_model_dir()
            if not _is_checkpoint(folder):
                raise WeightsNotFoundError(_embedded_missing_message(folder))
            model, processor = _load_checkpoint(folder, dtype)
        else:
            model, processor = build_model(preset.name, pretrained=True, dtype=dtype)
    elif path.exists():
        raise WeightsNotFoundError(f"{path}: not a model folder (no config.json)")
    else:
        raise FileNotFoundError(
            f"{path_or_preset}: neither a model folder nor a preset (presets: {', '.join(list_presets())})"
        )
    if adapter is not None:
        model = load_adapter(model, adapter)
        if merge:
            model = merge_adapter(model)
    elif merge:
        raise ValueError("merge=True needs an adapter to merge")
    model = model.to(device=device, dtype=dtype).eval()
    return model, processor


# ---- LoRA ---------------------------------------------------------------------------------------
def _lora_pattern(targets: list[str]) -> str:
    names = "|".join(re.escape(name) for name in targets)
    return rf"model\.language_model\..*\.({names})"


def vision_trainable_names(model: UltraForConditionalGeneration) -> list[str]:
    """Vision-side parameters that train alongside LoRA: all but frozen encoders."""
    frozen_encoders = FusionConfig.model_validate(model.config.vision).freeze_encoders
    names = []
    for name, _ in model.model.vision_tower.named_parameters():
        if frozen_encoders and name.startswith("encoders."):
            continue
        names.append(f"model.vision_tower.{name}")
    return names


def apply_lora(model: UltraForConditionalGeneration, settings: LoraSettings | None = None) -> torch.nn.Module:
    """Wrap the model with LoRA on the LLM (``get_peft_model``) and unfreeze the fusion side."""
    from peft import LoraConfig, get_peft_model

    settings = settings or LoraSettings()
    targets = settings.target_modules or model.config.lora_target_modules or list(QWEN_LORA_TARGETS)
    lora_config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=_lora_pattern(targets),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora_config)
    if settings.train_vision:
        parameters = dict(model.named_parameters())
        for name in vision_trainable_names(model):
            parameters[name].requires_grad_(True)
    return peft_model


def trained_non_lora_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
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


def save_adapter(peft_model: torch.nn.Module, directory: str | Path) -> Path:
    """The LoRA adapter (peft format) plus the trained vision-side weights, both safetensors."""
    directory = Path(directory)
    peft_model.save_pretrained(directory, safe_serialization=True)
    base = peft_model.get_base_model()
    metadata = {"projectors_trained": str(bool(base.config.projectors_trained)).lower()}
    save_file(trained_non_lora_state(base), str(directory / VISION_TRAINABLES_FILE), metadata=metadata)
    return directory


def load_adapter(
    model: UltraForConditionalGeneration, directory: str | Path, is_trainable: bool = False
) -> torch.nn.Module:
    """Base model + adapter: the LoRA weights and the saved vision-side weights."""
    from peft import PeftModel
    from safetensors import safe_open

    directory = Path(directory)
    if not (directory / "adapter_config.json").is_file():
        raise WeightsNotFoundError(f"{directory}: not a LoRA adapter folder (no adapter_config.json)")
    peft_model = PeftModel.from_pretrained(model, str(directory), is_trainable=is_trainable)
    extra = directory / VISION_TRAINABLES_FILE
    if extra.is_file():
        state = load_file(str(extra))
        with safe_open(str(extra), framework="pt") as handle:
            metadata = handle.metadata() or {}
        result = model.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise ValueError(
                f"{extra}: weights the model does not have: {', '.join(result.unexpected_keys[:5])}"
            )
        if metadata.get("projectors_trained") == "true":
            model.config.projectors_trained = True
    return peft_model


def merge_adapter(peft_model: torch.nn.Module) -> UltraForConditionalGeneration:
    """Fold LoRA into the base weights; the result saves as a plain checkpoint."""
    return peft_model.merge_and_unload()
