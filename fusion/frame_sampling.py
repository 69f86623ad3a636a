"""Which frames of a clip to look at, as plain index arithmetic: importing it costs nothing (no
torch, no OpenCV), so a DICOM worker that only samples cine frames stays small."""

from __future__ import annotations


def uniform_frame_indices(total: int, num_frames: int) -> list[int]:
    """``num_frames`` indices at the centres of equal segments; repeats frames when total < num_frames."""
    if total <= 0:
        raise ValueError(f"cannot sample from a clip with {total} frames")
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    return [min(total - 1, int((index + 0.5) * total / num_frames)) for index in range(num_frames)]
