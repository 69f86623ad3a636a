"""The 图像问答 tab's handlers: a multimodal chat over uploaded images (streamed), the scan-region
view, and the evidence heat map on request. State lives in each session's ``ChatState``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from demo import texts
from demo.reading import ShownImage, read_upload
from demo.uploads import SessionFiles, UploadKinds, UploadRefused
from ultra.answerer import Answerer, GenerationSettings, PromptTooLongError, Request, Turn
from ultra.dicom.deid import Deidentifier
from ultra.media import MediaError, MediaLimits

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "ultra" / "examples"
EXAMPLES = {
    "良性病灶：该病灶是良性还是恶性？": ("busi/benign-1.png", "该病灶是良性还是恶性？"),
    "恶性病灶：描述病灶的形态、边界、回声和血流。": (
        "busi/malignant-1.png",
        "描述病灶的形态、边界、回声和血流。",
    ),
    "正常乳腺：图像中是否有病灶？": ("busi/normal-1.png", "图像中是否有病灶？"),
    "DICOM（去标识化显示）：这是什么检查？": ("dicom/us_rgb_color.dcm", "这是什么检查？"),
}


def read_uploads(
    paths: list[str], first_index: int, deid: Deidentifier, limits: MediaLimits
) -> list[ShownImage]:
    """Uploaded files, numbered from ``first_index`` in messages; a bad one is a Chinese gr.Error."""
    shown = []
    for offset, path in enumerate(paths):
        index = first_index + offset
        try:
            shown.append(read_upload(path, f"文件 {index}", deid, limits))
        except MediaError as error:
            raise gr.Error(texts.unreadable(index, error.reason), print_exception=False) from None
        except Exception as error:  # a file no reader expected: one line in the log, a message in the page
            logger.warning("文件 %d: unexpected %s while reading", index, type(error).__name__)
            raise gr.Error(texts.unreadable(index, "无法解析的文件"), print_exception=False) from None
    return shown


def refused(error: UploadRefused, first_index: int) -> gr.Error:
    """An upload refused before reading, named by its position like an unreadable one."""
    return gr.Error(texts.unreadable(first_index + error.offset, error.reason), print_exception=False)


@dataclass
class ChatState:
    """One session's chat: the turns the model sees, what the page shows, the last answer."""

    turns: list[Turn] = field(default_factory=list)
    shown: list[ShownImage] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    explainable: tuple[Request, str] | None = None


@dataclass
class ImageChat:
    answerer: Answerer
    files: SessionFiles
    deid: Deidentifier
    limits: MediaLimits
    kinds: UploadKinds
    max_images: int = 8
    max_new_tokens: int = 128

    def _read(self, paths: list[str], first_index: int) -> list[ShownImage]:
        return read_uploads(paths, first_index, self.deid, self.limits)

    def _preview(self, session: str, image: Image.Image) -> str:
        path = self.files.new_file(session, ".png")
        image.save(path)
        return str(path)

    def ask(
        self, message: dict | None, state: ChatState | None, request: gr.Request
    ) -> Iterator[tuple[list[dict[str, Any]], ChatState, dict | None, list, str]]:
        """Read the message's files, then stream the answer into the chat."""
        state = state or ChatState()
        message = message or {}
        question = (message.get("text") or "").strip()
        uploads = list(message.get("files") or [])
        if not question:
            raise gr.Error(texts.NO_QUESTION, print_exception=False)
        if len(state.shown) + len(uploads) > self.max_images:
            raise gr.Error(texts.TOO_MANY_IMAGES.format(limit=self.max_images), print_exception=False)
        first = len(state.shown) + 1
        try:
            with self.files.take(uploads, self.kinds) as taken:
                shown = self._read([str(p) for p in taken], first)
        except UploadRefused as error:
            raise refused(error, first) from None
        yield from self._answer(question, shown, state, request)

    def ask_example(self, name: str, state: ChatState | None, request: gr.Request):
        """One click on a bundled example: its image and question, answered in a fresh chat."""
        if name not in EXAMPLES:
            raise gr.Error(f"没有这个示例：{name}", print_exception=False)
        relative, question = EXAMPLES[name]
        yield from self._answer(question, self._read([str(EXAMPLES_DIR / relative)], 1), ChatState(), request)

    def _answer(self, question: str, new: list[ShownImage], state: ChatState, request: gr.Request):
        session = request.session_hash
        request_ = Request(
            question,
            [item.image for item in new],
            history=list(state.turns),
            settings=GenerationSettings(max_new_tokens=self.max_new_tokens),
        )
        try:
            stream = self.answerer.stream_batch([request_])[0]
        except PromptTooLongError:
            raise gr.Error(texts.PROMPT_TOO_LONG, print_exception=False) from None
        except ValueError as error:  # a reserved placeholder typed into the question
            raise gr.Error(f"无法处理该问题：{error}", print_exception=False) from None
        state.shown += new
        user_content: list[Any] = [question, *({"path": self._preview(session, item.image)} for item in new)]
        state.messages.append({"role": "user", "content": user_content})
        state.messages.append({"role": "assistant", "content": ""})
        panels = self.panels(state)
        answer = ""
        for piece in stream:
            answer += piece
            state.messages[-1] = {"role": "assistant", "content": answer}
            yield state.messages, state, None, *panels
        state.messages[-1] = {"role": "assistant", "content": answer}
        state.turns += [Turn("user", question, request_.images), Turn("assistant", answer)]
        if request_.images:
            state.explainable = (request_, answer)
        yield state.messages, state, None, *panels

    def panels(self, state: ChatState) -> tuple[list, str]:
        """The scan-region views (box drawn) and the de-identified DICOM header text."""
        from fusion.ultrasound import draw_scan_box, find_scan_region

        views = [
            (draw_scan_box(item.image, find_scan_region(item.image)), f"图像 {index}")
            for index, item in enumerate(state.shown, start=1)
        ]
        header = "\n\n".join(
            f"**图像 {index}**  \n" + "  \n".join(item.header)
            for index, item in enumerate(state.shown, start=1)
            if item.header
        )
        return views, header or "（无 DICOM 文件）"

    def explain(self, state: ChatState | None, request: gr.Request) -> str:
        """The occlusion heat map of the latest answered image (its title carries the notice)."""
        from ultra.explain import occlusion_map, save_heatmap

        if state is None or state.explainable is None:
            raise gr.Error(texts.NO_IMAGE_FOR_MAP, print_exception=False)
        request_, answer = state.explainable
        if not answer.strip():
            raise gr.Error(texts.EMPTY_ANSWER, print_exception=False)
        occlusion = occlusion_map(self.answerer, request_, answer, image_index=0)
        image = self.answerer.processor.prepare_image(request_.images[0])
        path = self.files.new_file(request.session_hash, ".png")
        return str(save_heatmap(image, occlusion, path, request_.question, answer))

    @staticmethod
    def clear() -> tuple[list, ChatState, list, str]:
        return [], ChatState(), [], ""
