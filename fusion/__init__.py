"""fusion: multi-encoder vision backbone (LLaVA-Ultra style), the pixel policy, ultrasound
preprocessing and video pooling.

The lowest floor: every package reads pixels through ``fusion.pixels`` and builds named tables
with ``fusion.registry``, so names are imported on first use (PEP 562) and reading an image never
pulls in torch, timm or OpenCV (``ultra/__init__.py`` does the same for its front door).
"""

from __future__ import annotations

import importlib

_EXPORTS: dict[str, tuple[str, ...]] = {
    "fusion.config": ("FusionConfig", "FusionMode"),
    "fusion.crop_files": ("CropResult", "crop_image_files"),
    "fusion.encoders": (
        "ENCODERS",
        "EncoderSpec",
        "EncoderTokens",
        "ImageTransform",
        "VisionEncoder",
        "build_encoder",
        "resolve_spec",
    ),
    "fusion.io": ("load_fusion", "save_fusion"),
    "fusion.model": ("VisionFusion", "align_tokens"),
    "fusion.modes": ("FUSION_MODES", "FusionRule"),
    "fusion.pixels": ("PixelError", "read_image_file", "rgb_array", "to_rgb", "video_frame_to_rgb"),
    "fusion.pretrained": ("RENAME_TABLES", "MissingWeightsPackage", "PackageWeights", "load_package_weights"),
    "fusion.projectors": ("PROJECTORS", "build_projector"),
    "fusion.ultrasound": (
        "ScanBox",
        "crop_scan_region",
        "denoise_speckle",
        "draw_scan_box",
        "find_scan_region",
        "prepare_ultrasound",
    ),
    "fusion.frame_sampling": ("uniform_frame_indices",),
    "fusion.video": (
        "count_video_frames",
        "encode_clip",
        "pool_video_tokens",
        "read_video_frames",
        "sample_frames",
        "scene_change_frame_indices",
        "video_token_count",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'fusion' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
