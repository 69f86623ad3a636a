"""The 手术视频 tab's handlers: a short video (or several frames) → the frames the model samples,
shown as a strip → a chat about the clip. Surgical frames never ship with ultra (non-commercial
licences); the example comes from ``../shared/data/laparoscopy_frames`` when that folder exists."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from demo import texts
from demo.replies import stream_reply
from demo.uploads import SessionFiles, UploadKinds, UploadRefused, upload_path
from ultra.answerer import Answerer, GenerationSettings, Request, Turn
from ultra.media import MediaError, MediaLimits, read_video

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
EXAMPLE_NAME = "腹腔镜示例（../shared/data，video04 前 16 帧）"


def shared_data_root() -> Path:
    """``../shared/data`` beside the checkout, or $ULTRA_SHARED_DATA (as the tests find it)."""
    override = os.environ.get("ULTRA_SHARED_DATA")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "data"


def example_frames(count: int = 16) -> list[Path]:
    """The first frames of one laparoscopy video, in frame order; empty when the data is absent."""
    folder = shared_data_root() / "laparoscopy_frames" / "test" / "images"
    if not folder.is_dir():
        return []
    numbered = []
    for path in folder.glob("video04_mp4-*.jpg"):
        match = re.match(r"video04_mp4-(\d+)_", path.name)
        if match:
            numbered.append((int(match.group(1)), path))
    return [path for _, path in sorted(numbered)[:count]]


def _natural(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


@dataclass
class VideoState:
    frames: list[Image.Image] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class VideoChat:
    answerer: Answerer
    files: SessionFiles
    limits: MediaLimits
    kinds: UploadKinds
    max_new_tokens: int = 128

    def _loaded(self, frames: list[Image.Image]) -> tuple[list, VideoState, list]:
        strip = [
            (frame, f"帧 {i}") for i, frame in enumerate(self.answerer.processor.sample_frames(frames), 1)
        ]
        return strip, VideoState(frames=frames), []

    def load(self, uploads: list[str | dict] | None, request: gr.Request) -> tuple[list, VideoState, list]:
        """Read the upload (a video, or frames in name order) and show the sampled frames."""
        if not uploads:
            raise gr.Error(texts.NO_VIDEO, print_exception=False)
        # the taken names are random; frames keep the order of the uploaded names
        order = sorted(range(len(uploads)), key=lambda i: _natural(upload_path(uploads[i])))
        try:
            with self.files.take(uploads, self.kinds) as paths:
                frames = self._frames_in_order([paths[i] for i in order])
        except UploadRefused as error:
            raise gr.Error(texts.unreadable_video(error.reason), print_exception=False) from None
        return self._loaded(frames)

    def _frames_in_order(self, paths: list[Path]) -> list[Image.Image]:
        try:
            if len(paths) == 1 and paths[0].suffix.lower() not in IMAGE_SUFFIXES:
                return read_video(paths[0], limits=self.limits, source_id="视频")
            return read_video(paths, limits=self.limits, source_id="帧序列")
        except MediaError as error:
            raise gr.Error(texts.unreadable_video(error.reason), print_exception=False) from None

    def load_example(self) -> tuple[list, VideoState, list]:
        frames = example_frames()
        if not frames:
            raise gr.Error("示例数据不存在（../shared/data/laparoscopy_frames）。", print_exception=False)
        return self._loaded(self._frames_in_order(frames))

    def ask(self, question: str, state: VideoState | None) -> Iterator[tuple[list, VideoState, str]]:
        if state is None or not state.frames:
            raise gr.Error(texts.NO_VIDEO, print_exception=False)
        question = (question or "").strip()
        if not question:
            raise gr.Error(texts.NO_QUESTION, print_exception=False)
        request = Request(
            question,
            video_frames=state.frames,
            history=list(state.turns),
            settings=GenerationSettings(max_new_tokens=self.max_new_tokens),
        )
        for _ in stream_reply(self.answerer, request, state):
            yield state.messages, state, ""
        yield state.messages, state, ""
