"""Video input (LLaVA-Surg style): sample a fixed number of frames, encode each, pool tokens.

A clip always costs ``video_token_count(num_tokens, num_frames)`` LLM tokens whatever its
length: it is sampled to exactly ``num_frames`` frames (a short clip repeats frames), every
frame goes through the same ``VisionFusion``, and the ``[F, T, D]`` frame tokens are pooled to
the temporal mean of each spatial token (``T``) plus each frame's spatial mean (``F``), as
Video-ChatGPT does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from fusion.frame_sampling import uniform_frame_indices
from fusion.model import VisionFusion
from fusion.pixels import video_frame_to_rgb
from fusion.progress import progress_bar

logger = logging.getLogger(__name__)

FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
SamplingStrategy = Literal["uniform", "scene"]


def _thumbnail(frame: Image.Image, size: int) -> np.ndarray:
    return (
        np.asarray(frame.convert("L").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
        / 255.0
    )


def scene_change_frame_indices(frames: Sequence[Image.Image], num_frames: int, size: int = 64) -> list[int]:
    """The first frame plus the ``num_frames - 1`` frames that differ most from their predecessor.

    Difference is ``1 - SSIM`` between consecutive grayscale thumbnails (``size`` px), so a cut
    or a new view is picked over a slow drift. Clips no longer than ``num_frames`` fall back to
    uniform sampling (repeating frames). Returned in temporal order.
    """
    total = len(frames)
    if total <= num_frames:
        return uniform_frame_indices(total, num_frames)
    thumbnails = [_thumbnail(frame, size) for frame in frames]
    change = np.array(
        [
            1.0 - structural_similarity(a, b, data_range=1.0)
            for a, b in zip(thumbnails, thumbnails[1:], strict=False)
        ]
    )
    order = np.argsort(-change, kind="stable")[: num_frames - 1] + 1
    return sorted([0, *order.tolist()])


def _natural_key(path: Path) -> list[int | str]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_frame_files(folder: str | Path) -> list[Path]:
    """The frame images of a folder (by suffix) in natural name order (frame2 before frame10)."""
    return sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=_natural_key)


def _read_video_file(path: Path, indices: Sequence[int] | None, show_progress: bool) -> list[Image.Image]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: OpenCV cannot open this video (unknown container or codec)")
    wanted = None if indices is None else set(indices)
    last = None if indices is None else max(indices)
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if last is None else last + 1
    decoded: dict[int, Image.Image] = {}
    index = 0
    progress = progress_bar(
        total=total or None, description=f"reading {path.name}", unit="frame", enabled=show_progress
    )
    try:
        while last is None or index <= last:
            if not capture.grab():
                break
            if wanted is None or index in wanted:
                ok, bgr = capture.retrieve()
                if ok:
                    decoded[index] = video_frame_to_rgb(bgr, f"{path} frame {index}")
                else:
                    logger.warning("%s: frame %d could not be decoded; skipped", path, index)
            index += 1
            progress.update()
    finally:
        capture.release()
        progress.close()
    if not decoded:
        raise ValueError(f"{path}: no frame could be decoded")
    if indices is None:
        return [decoded[i] for i in sorted(decoded)]
    missing = sorted(set(indices) - set(decoded))
    if missing:
        raise ValueError(f"{path}: frames {missing[:5]} are past the end ({index} frames) or undecodable")
    return [decoded[i] for i in indices]


def read_video_frames(
    path: str | Path, indices: Sequence[int] | None = None, show_progress: bool = False
) -> list[Image.Image]:
    """RGB frames of a video file (OpenCV).

    With ``indices`` only those frames are kept (in the order given), so a long video need not
    sit in memory. ``show_progress`` draws a frame counter with its rate while the file decodes.
    A folder of frames is not read here: ``ultra.media.read_video`` reads it, checking each
    frame's size and refusing an unreadable one, so a clip never loses frames silently.
    """
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such video file")
    if source.is_dir():
        raise ValueError(f"{source}: a folder of frames, not a video file (ultra.media.read_video reads folders)")
    return _read_video_file(source, indices, show_progress)


def probe_video(path: str | Path) -> tuple[int, int, int]:
    """``(frames, width, height)`` of a video file from its container, without decoding a frame
    (frames is 0 when the container does not say)."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ValueError(f"{path}: OpenCV cannot open this video")
        frames, width, height = (
            max(0, int(capture.get(prop)))
            for prop in (cv2.CAP_PROP_FRAME_COUNT, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT)
        )
        return frames, width, height
    finally:
        capture.release()


def count_video_frames(path: str | Path) -> int:
    """Frames in a folder, or the container's frame count for a video file."""
    source = Path(path)
    if source.is_dir():
        return len(list_frame_files(source))
    return probe_video(source)[0]


def sample_frames(
    frames: Sequence[Image.Image], num_frames: int, strategy: SamplingStrategy = "uniform"
) -> list[Image.Image]:
    """Exactly ``num_frames`` frames by ``uniform`` or ``scene`` (SSIM change) sampling."""
    if strategy == "uniform":
        indices = uniform_frame_indices(len(frames), num_frames)
    elif strategy == "scene":
        indices = scene_change_frame_indices(frames, num_frames)
    else:
        raise ValueError(f"unknown sampling strategy {strategy!r}; choose 'uniform' or 'scene'")
    return [frames[i] for i in indices]


def video_token_count(num_tokens_per_frame: int, num_frames: int) -> int:
    """LLM tokens for one clip: one per spatial position plus one per frame."""
    return num_tokens_per_frame + num_frames


def pool_video_tokens(frame_tokens: torch.Tensor) -> torch.Tensor:
    """``[F, T, D]`` → ``[T + F, D]``: temporal mean per token, then mean over tokens per frame.
    A tower's decision token is one of the ``T`` (the clip's mean decision, and part of each
    frame's mean)."""
    if frame_tokens.dim() != 3:
        raise ValueError(f"expected frame tokens [F, T, D], got shape {tuple(frame_tokens.shape)}")
    return torch.cat([frame_tokens.mean(dim=0), frame_tokens.mean(dim=1)], dim=0)


def encode_clip(
    fusion: VisionFusion,
    frames: Sequence[Image.Image],
    num_frames: int,
    strategy: SamplingStrategy = "uniform",
    batch_size: int = 8,
) -> torch.Tensor:
    """Tokens ``[video_token_count(fusion.num_tokens, num_frames), hidden]`` for one clip."""
    if not frames:
        raise ValueError("encode_clip needs at least one frame")
    chosen = sample_frames(frames, num_frames, strategy)
    chunks = []
    for start in range(0, len(chosen), batch_size):
        chunks.append(fusion(fusion.preprocess(list(chosen[start : start + batch_size]))))
    return pool_video_tokens(torch.cat(chunks, dim=0))
