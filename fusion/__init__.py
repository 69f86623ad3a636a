"""fusion: multi-encoder vision backbone (LLaVA-Ultra style), ultrasound preprocessing and video pooling."""

from fusion.config import FusionConfig, FusionMode
from fusion.crop_files import CropResult, crop_image_files
from fusion.encoders import (
    EncoderRegistry,
    EncoderSpec,
    EncoderTokens,
    ImageTransform,
    VisionEncoder,
    build_encoder,
    get_encoder_spec,
    list_encoders,
    register_encoder,
    resolve_spec,
)
from fusion.io import load_fusion, save_fusion
from fusion.model import VisionFusion, align_tokens
from fusion.projectors import build_projector
from fusion.ultrasound import (
    ScanBox,
    crop_scan_region,
    denoise_speckle,
    draw_scan_box,
    find_scan_region,
    prepare_ultrasound,
    to_three_channels,
)
from fusion.video import (
    count_video_frames,
    encode_clip,
    pool_video_tokens,
    read_video_frames,
    sample_frames,
    scene_change_frame_indices,
    uniform_frame_indices,
    video_token_count,
)

__all__ = [
    "CropResult",
    "EncoderRegistry",
    "EncoderSpec",
    "EncoderTokens",
    "FusionConfig",
    "FusionMode",
    "ImageTransform",
    "ScanBox",
    "VisionEncoder",
    "VisionFusion",
    "align_tokens",
    "build_encoder",
    "build_projector",
    "count_video_frames",
    "crop_image_files",
    "crop_scan_region",
    "denoise_speckle",
    "draw_scan_box",
    "encode_clip",
    "find_scan_region",
    "get_encoder_spec",
    "list_encoders",
    "load_fusion",
    "pool_video_tokens",
    "prepare_ultrasound",
    "read_video_frames",
    "register_encoder",
    "resolve_spec",
    "sample_frames",
    "save_fusion",
    "scene_change_frame_indices",
    "to_three_channels",
    "uniform_frame_indices",
    "video_token_count",
]
