"""Video: clips assembled from real laparoscopy frames, sampling, and a fixed token budget."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from fusion import FusionConfig, VisionFusion
from fusion.video import (
    count_video_frames,
    encode_clip,
    pool_video_tokens,
    read_video_frames,
    scene_change_frame_indices,
    uniform_frame_indices,
    video_token_count,
)

CLIP_SIZE = (140, 112)  # 1400x1120 frames downscaled 10x


def _ordered_frame_paths(shared_data: Path) -> list[Path]:
    folder = shared_data / "laparoscopy_frames" / "test" / "images"
    paths = list(folder.glob("*.jpg"))
    return sorted(paths, key=lambda p: int(re.search(r"mp4-(\d+)_jpg", p.name).group(1)))


def _write_clip(paths: list[Path], target: Path, fourcc: str) -> Path:
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*fourcc), 25, CLIP_SIZE)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    for path in paths:
        frame = cv2.resize(cv2.imread(str(path)), CLIP_SIZE, interpolation=cv2.INTER_AREA)
        writer.write(frame)
    writer.release()
    return target


@pytest.fixture(scope="module")
def tiny_fusion() -> VisionFusion:
    torch.manual_seed(0)
    return VisionFusion(FusionConfig(encoders=["tiny-vit", "tiny-cnn"], hidden_size=16, grid=(2, 2))).eval()


def test_uniform_indices_cover_and_repeat() -> None:
    assert uniform_frame_indices(80, 8) == [5, 15, 25, 35, 45, 55, 65, 75]
    repeated = uniform_frame_indices(3, 8)
    assert repeated == sorted(repeated) and len(repeated) == 8
    assert sorted(repeated.count(i) for i in range(3)) == [2, 3, 3]
    assert uniform_frame_indices(1, 4) == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="0 frames"):
        uniform_frame_indices(0, 4)


def test_clips_of_8_and_64_frames_give_same_token_count(
    shared_data: Path, tmp_path: Path, tiny_fusion
) -> None:
    paths = _ordered_frame_paths(shared_data)
    assert len(paths) >= 64
    short = _write_clip(paths[:8], tmp_path / "short.mp4", "mp4v")
    long = _write_clip(paths[:64], tmp_path / "long.avi", "MJPG")
    assert count_video_frames(short) == 8 and count_video_frames(long) == 64
    expected = video_token_count(tiny_fusion.num_tokens, 16)
    with torch.no_grad():
        for clip in (short, long):
            frames = read_video_frames(clip)
            assert frames[0].size == CLIP_SIZE
            for strategy in ("uniform", "scene"):
                tokens = encode_clip(tiny_fusion, frames, num_frames=16, strategy=strategy)
                assert tokens.shape == (expected, 16)
                assert torch.isfinite(tokens).all()


def test_frame_folder_reads_in_temporal_order_and_refuses_bad_files(shared_data: Path, tmp_path: Path) -> None:
    """Folders are read by ultra.media alone (fusion.video reads files): in natural name order,
    and an unreadable frame is refused by name, never skipped (a clip would lose a frame)."""
    from ultra.media import MediaError, read_video

    paths = _ordered_frame_paths(shared_data)[:12]
    folder = tmp_path / "frames"
    folder.mkdir()
    for order, path in enumerate(paths):
        image = Image.open(path).convert("RGB").resize(CLIP_SIZE)
        image.save(folder / f"frame_{order}.png")  # frame_10 sorts after frame_9
    frames = read_video(folder)
    assert len(frames) == 12
    reference = np.asarray(Image.open(paths[10]).convert("RGB").resize(CLIP_SIZE), dtype=float)
    assert np.abs(np.asarray(frames[10], dtype=float) - reference).mean() < 1.0
    picked = read_video(folder, indices=[11, 0])
    assert np.array_equal(np.asarray(picked[1]), np.asarray(frames[0]))
    with pytest.raises(ValueError, match="a folder of frames"):
        read_video_frames(folder)
    (folder / "frame_5b.jpg").write_bytes(b"not an image")
    with pytest.raises(MediaError, match="frame_5b.jpg"):
        read_video(folder)


def test_video_file_subset_matches_full_read(shared_data: Path, tmp_path: Path) -> None:
    clip = _write_clip(_ordered_frame_paths(shared_data)[:10], tmp_path / "c.avi", "MJPG")
    every = read_video_frames(clip)
    subset = read_video_frames(clip, indices=[2, 7])
    assert np.array_equal(np.asarray(subset[1]), np.asarray(every[7]))
    with pytest.raises(ValueError, match="past the end"):
        read_video_frames(clip, indices=[3, 40])


def test_scene_change_picks_the_cuts(shared_data: Path) -> None:
    """Three shots of real frames (A, B, C) with sensor noise: the cuts are found, not the noise."""
    paths = _ordered_frame_paths(shared_data)
    shots = [
        np.asarray(Image.open(paths[i]).convert("RGB").resize(CLIP_SIZE), dtype=np.int16) for i in (0, 40, 80)
    ]
    rng = np.random.default_rng(0)
    frames = []
    for shot, length in zip(shots, (5, 4, 6), strict=True):
        for _ in range(length):
            noisy = np.clip(shot + rng.integers(-3, 4, shot.shape), 0, 255).astype(np.uint8)
            frames.append(Image.fromarray(noisy))
    assert scene_change_frame_indices(frames, 3) == [0, 5, 9]
    assert scene_change_frame_indices(frames[:2], 3) == uniform_frame_indices(2, 3)


def test_pool_video_tokens_is_temporal_then_spatial_mean() -> None:
    tokens = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    pooled = pool_video_tokens(tokens)
    assert pooled.shape == (3 + 2, 4)
    torch.testing.assert_close(pooled[0], (tokens[0, 0] + tokens[1, 0]) / 2)
    torch.testing.assert_close(pooled[3], tokens[0].mean(dim=0))


def test_unreadable_video_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="broken.mp4"):
        read_video_frames(bad)
    with pytest.raises(FileNotFoundError, match="missing"):
        read_video_frames(tmp_path / "missing")
