"""``UltraConfig``: a fusion vision part plus any causal-LM text config, in one transformers config.

Composition follows transformers' ``LlavaConfig``: the language model is an ordinary sub-config
(``text_config``, any causal LM that ``AutoModelForCausalLM`` can build) and the vision part is a
typed ``fusion.FusionConfig`` (``vision``), validated with the rest of the config and written to
``config.json`` as its JSON form. Behaviour is decided by these fields, never by model names.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict
from pydantic import ValidationError
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from fusion import FusionConfig

DEFAULT_SYSTEM_PROMPT = "你是一名超声影像助手。请根据图像用中文简洁地回答问题。回答仅供研究，非临床诊断。"


@strict
class UltraConfig(PreTrainedConfig):
    """Configuration of :class:`UltraForConditionalGeneration`.

    ``vision`` is a ``fusion.FusionConfig`` (its dict form is accepted and validated here, so a
    bad ``config.json`` fails on load, not when the tower is built); ``vision.hidden_size`` must
    equal the LLM's hidden size, and ``tokens_per_image`` the fusion's ``num_tokens`` (checked when
    the model is built, the one place that knows the token count). ``projectors_trained`` records
    whether the projector/fusion weights were ever trained, so ``ultra ask`` can refuse a model whose
    image pathway is still random. ``crop_scan_region`` makes the processor cut every image to its
    ultrasound scan region (``fusion.ultrasound``) before the encoders see it.
    """

    model_type = "ultra"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2"),
    }

    text_config: dict | PreTrainedConfig | None = None
    vision: FusionConfig | dict | None = None
    image_token_id: int = 3
    video_token_id: int = 4
    tokens_per_image: int = 16
    video_num_frames: int = 8
    video_tokens: int = 24
    video_sampling: str = "uniform"
    projectors_trained: bool = False
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    lora_target_modules: list[str] | None = None
    crop_scan_region: bool = False
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.vision = fusion_config(self.vision)
        if not self.tie_word_embeddings and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True
        fusion_hidden = self.vision.hidden_size
        if fusion_hidden != self.text_config.hidden_size:
            raise ValueError(
                f"vision.hidden_size ({fusion_hidden}) must equal text_config.hidden_size "
                f"({self.text_config.hidden_size}): fused image tokens enter the LLM's embedding space"
            )
        vocab = self.text_config.vocab_size
        for name in ("image_token_id", "video_token_id"):
            value = getattr(self, name)
            if not 0 <= value < vocab:
                raise ValueError(f"{name} ({value}) is outside the LLM vocabulary (size {vocab})")
        if self.video_sampling not in ("uniform", "scene"):
            raise ValueError(f"video_sampling must be 'uniform' or 'scene', got {self.video_sampling!r}")
        if self.image_token_id == self.video_token_id:
            raise ValueError(f"image_token_id and video_token_id must differ (both {self.image_token_id})")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; ``vision`` as ``FusionConfig.model_dump(mode="json")``."""
        output = super().to_dict()
        output["vision"] = self.vision.model_dump(mode="json")
        return output


def fusion_config(vision: FusionConfig | dict | None) -> FusionConfig:
    """``vision`` as a validated ``FusionConfig``; a dict (``config.json``'s form) is validated here."""
    if vision is None:
        raise ValueError("UltraConfig needs `vision` (a fusion.FusionConfig or its dict form)")
    if isinstance(vision, FusionConfig):
        return vision
    try:
        return FusionConfig.model_validate(vision)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'vision'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise ValueError(f"UltraConfig.vision is not a valid fusion config: {problems}") from None
