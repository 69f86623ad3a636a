"""Judges score the policy's K answers to one question; ``JUDGES`` names them.

- ``label``: ground truth where it exists (BUSI classes): an answer scores 1 when its canonical
  label (``ultra.eval.canonical``) equals the one the record's class implies, else 0. It makes
  the loop measurable here; it is supervision, not a preference model.
- ``model``: a (larger) local ultra model; the score is its mean per-token log-likelihood of the
  answer given the image and question (``Answerer.log_likelihoods``).
- ``openai``: any OpenAI-compatible chat endpoint with image input (STLLaVA-Med used GPT-4o). It
  refuses to start without ``allow_remote_images`` and sends only freshly encoded PNG pixels (no
  file name, header or metadata); DICOM-backed items are never sent (run ``ultra dicom`` first,
  which de-identifies and masks burned-in text, and self-train on its PNGs).

A judge never raises for one item: a verdict it cannot give carries a ``problem`` (counted and
dropped by :mod:`ultra.selftrain.pairs`).
"""

from __future__ import annotations

import abc
import base64
import io
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from data_zh.converters.busi import LABEL_ZH
from data_zh.openai_client import ChatError, NotAChatCompletionError, OpenAIClient
from fusion.registry import Registry, UnknownEntryError
from ultra.config_io import ConfigError, parse_config
from ultra.eval.canonical import canonical_label
from ultra.media import MediaError, read_record_images
from ultra.selftrain.config import JudgeSettings
from ultra.selftrain.generate import Candidates

logger = logging.getLogger(__name__)

UNPARSEABLE = "unparseable"
UNJUDGEABLE = "unjudgeable"
REQUEST_FAILED = "request_failed"
NOT_DEIDENTIFIED = "not_deidentified"
EMPTY_ANSWER_SCORE = -100.0


@dataclass(frozen=True)
class Verdict:
    """Scores of the K answers (higher is better) and the judge's reason, or the problem that
    stopped it (then ``scores`` is None)."""

    scores: list[float] | None
    reason: str | None = None
    problem: str | None = None

    @classmethod
    def failed(cls, problem: str, reason: str | None = None) -> Verdict:
        return cls(None, reason, problem)


class Judge(abc.ABC):
    """Scores candidates; ``judge`` takes a batch (a local model scores many at once)."""

    name: str = ""

    def judge(self, batch: Sequence[Candidates]) -> list[Verdict]:
        return [self.judge_one(item) for item in batch]

    @abc.abstractmethod
    def judge_one(self, item: Candidates) -> Verdict:
        """The verdict on one question's answers."""


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


# label ------------------------------------------------------------------------------------------
class LabelOptions(_Options):
    site_answer: str = Field(default="乳腺", description="the organ a site question expects (BUSI: breast)")


def expected_answer(question: str, label: str, site_answer: str) -> str | None:
    """The answer a class label implies for a question, or None when the label cannot tell
    (a malignancy question about a normal image, a question about something else)."""
    if "良性" in question or "恶性" in question or "良恶性" in question:
        return LABEL_ZH[label] if label in ("benign", "malignant") else None
    if "病灶" in question or "病变" in question:
        return "否" if label == "normal" else "是"
    if "部位" in question or "器官" in question:
        return site_answer
    return None


class LabelJudge(Judge):
    """1 for an answer that matches what the ground-truth class implies, 0 otherwise."""

    name = "label"

    def __init__(self, options: dict[str, Any], allow_remote_images: bool = False) -> None:
        self.options = parse_config(options, LabelOptions, "judge options (label)")

    def judge_one(self, item: Candidates) -> Verdict:
        classes = [c for c in item.record.labels.classes if c in LABEL_ZH]
        if len(classes) != 1:
            return Verdict.failed(UNJUDGEABLE, "no single class label")
        question = item.record.question or ""
        expected = expected_answer(question, classes[0], self.options.site_answer)
        if expected is None:
            return Verdict.failed(UNJUDGEABLE, f"标签 {LABEL_ZH[classes[0]]} 无法判定此问题")
        gold = canonical_label(expected)
        scores = [1.0 if answer and canonical_label(answer) == gold else 0.0 for answer in item.answers]
        return Verdict(scores, f"标签为{LABEL_ZH[classes[0]]}，期望答案：{expected}")


# local model ------------------------------------------------------------------------------------
class ModelOptions(_Options):
    model: str = Field(description="a preset name or a model folder (ideally larger than the policy)")
    adapter: str | None = None
    batch_size: int = Field(default=16, gt=0)


class LocalModelJudge(Judge):
    """Mean per-token log-likelihood of each answer under a local ultra model."""

    name = "model"

    def __init__(self, options: dict[str, Any], allow_remote_images: bool = False) -> None:
        from ultra.answerer import Answerer

        self.options = parse_config(options, ModelOptions, "judge options (model)")
        self.answerer = Answerer.load(self.options.model, self.options.adapter)

    def judge(self, batch: Sequence[Candidates]) -> list[Verdict]:
        from ultra.answerer import Request

        verdicts: list[Verdict] = []
        for item in batch:
            try:
                images = read_record_images(item.record)
            except (MediaError, OSError) as error:
                verdicts.append(Verdict.failed(UNJUDGEABLE, f"image unreadable ({type(error).__name__})"))
                continue
            request = Request(item.record.question or "", images)
            texts = [answer for answer in item.answers if answer]
            likelihoods = iter(
                self.answerer.log_likelihoods([(request, text) for text in texts], self.options.batch_size)
            )
            scores = [next(likelihoods).mean if answer else EMPTY_ANSWER_SCORE for answer in item.answers]
            verdicts.append(Verdict(scores, f"评审模型 {self.options.model} 的平均对数似然"))
        return verdicts

    def judge_one(self, item: Candidates) -> Verdict:
        return self.judge([item])[0]


# OpenAI-compatible endpoint ---------------------------------------------------------------------
JUDGE_INSTRUCTIONS = (
    "你是超声影像专家评审。下面是关于同一张超声图像的一个问题和若干候选回答。"
    "请根据图像逐一给每个回答打分（0 到 10 分，越准确越高），只输出 JSON："
    '{"scores": [每个回答的分数], "reason": "简短理由"}'
)


class OpenAIOptions(_Options):
    base_url: str = Field(description="the endpoint's API root, e.g. https://api.openai.com/v1")
    model: str = "gpt-4o"
    api_key_env: str | None = Field(default="OPENAI_API_KEY", description="env variable holding the key")
    timeout_s: float = Field(default=60.0, gt=0)
    max_tokens: int = Field(default=256, gt=0)


class RemoteImagesNotAllowedError(ConfigError):
    """A remote judge was asked for without ``--allow-remote-images``."""


def png_data_url(image: Any) -> str:
    """The pixels only, as a PNG data URL (a fresh encode carries no name, header or metadata)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def parse_scores(content: str, count: int) -> Verdict:
    """A verdict from the endpoint's text: the first JSON object in it with ``count`` finite scores."""
    start, end = content.find("{"), content.rfind("}")
    if start < 0 or end <= start:
        return Verdict.failed(UNPARSEABLE, "no JSON object in the reply")
    try:
        payload = json.loads(content[start : end + 1])
        scores = [float(score) for score in payload["scores"]]
    except (ValueError, KeyError, TypeError) as error:
        return Verdict.failed(UNPARSEABLE, f"bad verdict ({type(error).__name__})")
    if len(scores) != count or not all(math.isfinite(score) for score in scores):
        return Verdict.failed(UNPARSEABLE, f"{len(scores)} scores for {count} answers")
    reason = payload.get("reason")
    return Verdict(scores, str(reason) if reason is not None else None)


class OpenAIJudge(Judge):
    """Scores from an OpenAI-compatible ``/chat/completions`` endpoint with an image part."""

    name = "openai"

    def __init__(self, options: dict[str, Any], allow_remote_images: bool = False) -> None:
        self.options = parse_config(options, OpenAIOptions, "judge options (openai)")
        if not allow_remote_images:
            raise RemoteImagesNotAllowedError(
                f"the openai judge sends images to {self.options.base_url}; pass --allow-remote-images "
                "(allow_remote_images: true) to allow it (only de-identified PNG pixels are sent)"
            )
        env = self.options.api_key_env
        self.client = OpenAIClient(
            self.options.base_url,
            api_key=(os.environ.get(env) or None) if env else None,
            timeout_s=self.options.timeout_s,
        )

    def _messages(self, item: Candidates, images: list) -> list[dict]:
        listing = "\n".join(f"回答{index + 1}：{answer}" for index, answer in enumerate(item.answers))
        text = f"{JUDGE_INSTRUCTIONS}\n问题：{item.record.question}\n{listing}"
        parts: list[dict] = [{"type": "text", "text": text}]
        parts += [{"type": "image_url", "image_url": {"url": png_data_url(image)}} for image in images]
        return [{"role": "user", "content": parts}]

    def judge_one(self, item: Candidates) -> Verdict:
        if item.record.media.dicom or item.record.media.video is not None:
            return Verdict.failed(
                NOT_DEIDENTIFIED, "DICOM/video media are never sent; use ultra dicom's PNGs"
            )
        try:
            images = read_record_images(item.record)
        except (MediaError, OSError) as error:
            return Verdict.failed(UNJUDGEABLE, f"image unreadable ({type(error).__name__})")
        try:
            content = self.client.chat(
                self.options.model,
                self._messages(item, images),
                temperature=0,
                max_tokens=self.options.max_tokens,
            )
        except NotAChatCompletionError as error:
            return Verdict.failed(UNPARSEABLE, str(error))
        except ChatError as error:
            return Verdict.failed(REQUEST_FAILED, str(error))
        return parse_scores(content, len(item.answers))


JUDGES: Registry[type[Judge]] = Registry(
    "judge", {judge.name: judge for judge in (LabelJudge, LocalModelJudge, OpenAIJudge)}
)
"""Judge classes by name (``JudgeSettings.name``); a new judge is a new entry."""


def create_judge(
    settings: JudgeSettings, allow_remote_images: bool = False, judges: Registry[type[Judge]] = JUDGES
) -> Judge:
    """The judge ``settings.name`` of ``judges`` with its options; an unknown name is a
    ``ConfigError`` with the registry's message."""
    try:
        judge = judges[settings.name]
    except UnknownEntryError as error:
        raise ConfigError(f"judge.name: {error}") from None
    return judge(settings.options, allow_remote_images)
