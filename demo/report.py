"""The 报告筛选 tab's handlers: a report and its images → ``screening.ReportScreener``'s verdict per
image (weight, kept or dropped and why) as a gallery → questions answered on the kept images,
weighted as the screener weighed them (``Request.image_weights``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from demo import texts
from demo.chat import EXAMPLES_DIR, read_uploads, refused
from demo.replies import stream_reply
from demo.uploads import SessionFiles, UploadKinds, UploadRefused
from ultra.answerer import Answerer, GenerationSettings, Request, Turn
from ultra.dicom.deid import Deidentifier
from ultra.media import MediaLimits

EXAMPLE_REPORT = EXAMPLES_DIR / "report" / "report.json"


def reason_text(reason: str | None) -> str:
    """The screener's reason in Chinese (``duplicate_of:<k>`` names image k+1)."""
    if reason is None:
        return "保留"
    if reason.startswith("duplicate_of:"):
        return f"舍弃：与图像 {int(reason.split(':', 1)[1]) + 1} 重复"
    return {"low_weight": "舍弃：权重低", "uninformative": "舍弃：无信息（空白或均匀画面）"}.get(
        reason, f"舍弃：{reason}"
    )


@dataclass
class ReportState:
    kept: list[Image.Image] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ReportScreening:
    answerer: Answerer
    screener: Any  # screening.ReportScreener
    files: SessionFiles
    deid: Deidentifier
    limits: MediaLimits
    kinds: UploadKinds
    max_new_tokens: int = 128

    def _screen(self, report: str, images: list[Image.Image]) -> tuple[list, ReportState, list]:
        report = (report or "").strip()
        if not report:
            raise gr.Error("请输入报告文本。", print_exception=False)
        if not images:
            raise gr.Error("请上传报告的图像（一张或多张）。", print_exception=False)
        result = self.screener.screen(report, images)
        gallery = [
            (images[v.index], f"图像 {v.index + 1}：权重 {v.weight:.2f} · {reason_text(v.reason)}")
            for v in result.images
        ]
        kept = [v for v in result.images if v.keep]
        state = ReportState(kept=[images[v.index] for v in kept], weights=[v.weight for v in kept])
        return gallery, state, []

    def screen(self, report: str, uploads: list[str | dict] | None, request: gr.Request):
        try:
            with self.files.take(uploads or [], self.kinds) as taken:
                shown = read_uploads([str(p) for p in taken], 1, self.deid, self.limits)
        except UploadRefused as error:
            raise refused(error, 1) from None
        return self._screen(report, [item.image for item in shown])

    def screen_example(self) -> tuple[str, list, ReportState, list]:
        """The bundled three-image report (one image a near-duplicate of another)."""
        example = json.loads(EXAMPLE_REPORT.read_text(encoding="utf-8"))
        paths = [str(EXAMPLE_REPORT.parent / name) for name in example["images"]]
        shown = read_uploads(paths, 1, self.deid, self.limits)
        return example["report"], *self._screen(example["report"], [item.image for item in shown])

    def ask(self, question: str, state: ReportState | None) -> Iterator[tuple[list, ReportState, str]]:
        if state is None or not state.kept:
            raise gr.Error("请先筛选报告图像。", print_exception=False)
        question = (question or "").strip()
        if not question:
            raise gr.Error(texts.NO_QUESTION, print_exception=False)
        request = Request(
            question,
            state.kept,
            history=list(state.turns),
            image_weights=state.weights if sum(state.weights) > 0 else None,
            settings=GenerationSettings(max_new_tokens=self.max_new_tokens),
        )
        for _ in stream_reply(self.answerer, request, state):
            yield state.messages, state, ""
        yield state.messages, state, ""


def screener_for(student: str | Path | None):
    """The screener from ``student`` (or the shipped student), or None when there is none: then
    the 报告筛选 tab is left out rather than shown with arbitrary weights."""
    from ultra.screen import NoStudentError, load_report_screener

    try:
        return load_report_screener(student)
    except NoStudentError:
        return None
