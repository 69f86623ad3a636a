"""Building and loading: every way to get a ``(model, processor)`` pair (LoRA from ``ultra.model.lora``).

``load_model`` is the one entry point: a checkpoint folder or a preset name, optionally with a
LoRA adapter, optionally merged. Checkpoints are safetensors only; nothing is ever unpickled.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from fusion import FusionConfig, VisionFusion
from fusion.video import video_token_count
from ultra.logs import log_duration
from ultra.model.configuration import UltraConfig
from ultra.model.lora import load_adapter, merge_lora
from ultra.model.modeling import UltraForConditionalGeneration
from ultra.model.presets import Preset, get_preset, list_presets
from ultra.model.processor import UltraProcessor
from ultra.model.tokenizer import IMAGE_TOKEN, VIDEO_TOKEN, add_multimodal_tokens, bundled_tokenizer_dir
from ultra.resources import embedded_model_dir

logger = logging.getLogger(__name__)


class WeightsNotFoundError(FileNotFoundError):
    """Weights that must be downloaded or trained first; the message says which and where."""


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
        vision=fusion_config,
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
        tower = VisionFusion(model.config.vision, load_pretrained=True)
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
        load_adapter(model, adapter)
        if merge:
            merge_lora(model)
    elif merge:
        raise ValueError("merge=True needs an adapter to merge")
    model = model.to(device=device, dtype=dtype).eval()
    return model, processor
