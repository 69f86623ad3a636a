"""Video input — a video file, a folder of frames or a list of frame paths — as RGB frames.

Files are decoded by ``fusion.video`` (OpenCV); frames x size are checked from the container (or
from each frame's header) before decoding. A container that does not state its frame count is
bounded per frame only. ``fusion`` is imported when a video is read, since it
brings torch and timm with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ultra.media.errors import MediaError
from ultra.media.images import open_checked
from ultra.media.limits import DEFAULT_LIMITS, MediaLimits
from ultra.media.pixels import to_rgb

VideoSource = str | Path | Sequence[str | Path]


def _pick(count: int, indices: Sequence[int] | None, source_id: str) -> list[int]:
    if count == 0:
        raise MediaError(source_id, "no frames (expected .jpg/.jpeg/.png/.bmp/.tif/.tiff/.webp files)")
    if indices is None:
        return list(range(count))
    bad = [index for index in indices if not 0 <= index < count]
    if bad:
        raise MediaError(source_id, f"frame indices {bad[:5]} out of range (0..{count - 1})")
    return list(indices)


def _read_frame_paths(
    paths: Sequence[Path], indices: Sequence[int] | None, source_id: str, limits: MediaLimits, named: bool
) -> list[Image.Image]:
    """Each chosen frame's header is checked (its size, and the running total) before it decodes."""
    chosen = _pick(len(paths), indices, source_id)
    frames, total = [], 0
    for position, index in enumerate(chosen):
        frame_id = f"{source_id} frame {index}" if named else str(paths[index])
        with open_checked(paths[index], frame_id, 0, limits) as image:
            if position == 0:
                limits.check_total(source_id, len(chosen), image.width, image.height, "video")
            total += image.width * image.height
            if total > limits.max_total_pixels:
                raise MediaError(
                    source_id,
                    f"video frames exceed the limit of {limits.max_total_pixels:,} pixels at frame {index}",
                )
            frames.append(to_rgb(image, frame_id))
    return frames


def _read_video_file(
    path: Path, indices: Sequence[int] | None, source_id: str, limits: MediaLimits
) -> list[Image.Image]:
    from fusion.video import probe_video, read_video_frames

    try:
        count, width, height = probe_video(path)
        limits.check_total(source_id, len(indices) if indices is not None else count, width, height, "video")
        return read_video_frames(path, indices)
    except MediaError:
        raise
    except (OSError, ValueError) as error:  # fusion names the path; the caller's id replaces it
        raise MediaError(source_id, str(error).removeprefix(f"{path}: ")) from None


def read_video(
    source: VideoSource,
    indices: Sequence[int] | None = None,
    *,
    limits: MediaLimits = DEFAULT_LIMITS,
    source_id: str | None = None,
) -> list[Image.Image]:
    """RGB frames of a video file, a folder of frames (natural name order) or a list of frame paths.

    With ``indices`` only those frames are decoded, in the order given (the processor samples the
    rest). Errors are MediaError naming ``source_id`` (default: the path, or ``"frame list"``); with
    a caller-given id, frame files are named by their index, never by path.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        sid = source_id or str(source)
        if path.is_dir():
            from fusion.video import list_frame_files

            return _read_frame_paths(list_frame_files(path), indices, sid, limits, source_id is not None)
        if not path.is_file():
            raise MediaError(sid, "no such video file or frame folder")
        return _read_video_file(path, indices, sid, limits)
    paths = [Path(p) for p in source]
    return _read_frame_paths(paths, indices, source_id or "frame list", limits, source_id is not None)
