"""``UltraForConditionalGeneration``: ``fusion.VisionFusion`` feeding any causal LM.

The layout follows transformers' LLaVA: ``model.vision_tower`` (the fusion of several encoders,
already projected to the LLM width), ``model.language_model`` (a decoder built from
``config.text_config``) and ``lm_head``. Image and video features replace the embeddings at their
placeholder tokens with a single ``masked_scatter``; generation plugs into ``GenerationMixin``
through ``get_image_features``/``get_video_features`` exactly as LLaVA does, so greedy, sampling,
KV cache, streaming and batching all come from transformers.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, CausalLMOutputWithPast

from fusion import VisionFusion
from fusion.video import pool_video_tokens, video_token_count
from ultra.model.configuration import UltraConfig

logger = logging.getLogger(__name__)


class UltraPreTrainedModel(PreTrainedModel):
    """Shared settings; the vision tower keeps its own (timm/fusion) initialisation."""

    config: UltraConfig
    config_class = UltraConfig
    base_model_prefix = "model"
    input_modalities = ("image", "video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["VisionFusion"]

    def _mark_vision_initialised(self, vision: nn.Module) -> None:
        for module in vision.modules():
            module._is_hf_initialized = True


class UltraModel(UltraPreTrainedModel):
    """Vision tower + decoder without the LM head (mirrors ``LlavaModel``)."""

    def __init__(self, config: UltraConfig) -> None:
        super().__init__(config)
        # A checkpoint holds the encoder weights, so the architecture is built without hub weights;
        # presets that start from pretrained encoders swap in a loaded tower (``loading.build_model``).
        self.vision_tower = VisionFusion(config.vision, load_pretrained=False)
        if self.vision_tower.num_tokens != config.tokens_per_image:
            raise ValueError(
                f"tokens_per_image ({config.tokens_per_image}) differs from the fusion's "
                f"{self.vision_tower.num_tokens} tokens per image"
            )
        expected_video = video_token_count(config.tokens_per_image, config.video_num_frames)
        if config.video_tokens != expected_video:
            raise ValueError(
                f"video_tokens ({config.video_tokens}) differs from fusion.video's count for "
                f"{config.video_num_frames} frames of {config.tokens_per_image} tokens ({expected_video})"
            )
        self._mark_vision_initialised(self.vision_tower)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_image_features(
        self, pixel_values: list[torch.Tensor], **kwargs: Any
    ) -> BaseModelOutputWithPooling:
        """One ``[tokens_per_image, hidden]`` tensor per image (``pooler_output``)."""
        features = self.vision_tower(list(pixel_values))
        return BaseModelOutputWithPooling(last_hidden_state=features, pooler_output=list(features))

    def get_video_features(
        self, pixel_values_videos: list[torch.Tensor], **kwargs: Any
    ) -> BaseModelOutputWithPooling:
        """Frames of every clip (``video_num_frames`` each, clip-major) -> one token block per clip,
        pooled by ``fusion.video.pool_video_tokens`` (the same block ``fusion.video.encode_clip`` gives)."""
        frames = int(pixel_values_videos[0].shape[0])
        per_clip = self.config.video_num_frames
        if frames % per_clip:
            raise ValueError(
                f"video input has {frames} frames, not a multiple of video_num_frames ({per_clip})"
            )
        features = self.vision_tower(list(pixel_values_videos))
        clips = features.reshape(frames // per_clip, per_clip, *features.shape[1:])
        blocks = [pool_video_tokens(clip) for clip in clips]
        return BaseModelOutputWithPooling(last_hidden_state=features, pooler_output=blocks)

    def _splice(
        self,
        input_ids: torch.Tensor,
        inputs_embeds: torch.Tensor,
        token_id: int,
        features: list[torch.Tensor] | None,
        kind: str,
    ) -> torch.Tensor:
        mask = input_ids == token_id
        n_tokens = int(mask.sum())
        stacked = (
            torch.cat(list(features), dim=0).to(inputs_embeds.device, inputs_embeds.dtype)
            if features
            else inputs_embeds.new_zeros(0, inputs_embeds.shape[-1])
        )
        if n_tokens != stacked.shape[0]:
            raise ValueError(
                f"{kind} features and {kind} tokens do not match: the text holds {n_tokens} {kind} tokens "
                f"but the {kind} input gives {stacked.shape[0]} feature vectors"
            )
        if n_tokens == 0:
            return inputs_embeds
        return inputs_embeds.masked_scatter(mask.unsqueeze(-1).expand_as(inputs_embeds), stacked)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: list[torch.Tensor] | None = None,
        pixel_values_videos: list[torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any | None = None,
        inputs_embeds: torch.Tensor | None = None,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        encoded = dict(mm_encoder_outputs or {})
        if pixel_values is not None and encoded.get("image") is None:
            encoded["image"] = self.get_image_features(pixel_values)
        if pixel_values_videos is not None and encoded.get("video") is None:
            encoded["video"] = self.get_video_features(pixel_values_videos)
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
            for kind, token_id in (
                ("image", self.config.image_token_id),
                ("video", self.config.video_token_id),
            ):
                output = encoded.get(kind)
                inputs_embeds = self._splice(
                    input_ids,
                    inputs_embeds,
                    token_id,
                    output.pooler_output if output is not None else None,
                    kind,
                )
        elif encoded:
            raise ValueError("image/video inputs need input_ids to locate their placeholder tokens")
        return self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )


class UltraForConditionalGeneration(UltraPreTrainedModel, GenerationMixin):
    """The vision-language model users load, train, save and generate with."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: UltraConfig) -> None:
        super().__init__(config)
        self.model = UltraModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    @property
    def vision_tower(self) -> VisionFusion:
        """The fused encoders: the one way callers reach the tower (LoRA keeps it in place)."""
        return self.model.vision_tower

    @property
    def language_model(self) -> nn.Module:
        return self.model.language_model

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def get_image_features(
        self, pixel_values: list[torch.Tensor], **kwargs: Any
    ) -> BaseModelOutputWithPooling:
        return self.model.get_image_features(pixel_values, **kwargs)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: list[torch.Tensor] | None = None,
        pixel_values_videos: list[torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            pixel_values_videos=pixel_values_videos,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            mm_encoder_outputs=mm_encoder_outputs,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            hidden_states = hidden_states[:, -logits_to_keep:]
        elif isinstance(logits_to_keep, torch.Tensor):
            hidden_states = hidden_states[:, logits_to_keep]
        logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size
            )
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
