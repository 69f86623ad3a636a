"""The one record type every source is converted into (SurgΣ's lesson: one schema across tasks)."""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 2
"""Version 2 added LLaVA-Surg's four kinds of extracted facts (``Reasoning.observations`` …
``deductions``) and preference pairs (``Record.preference``) for self-training with DPO.
Version-1 files read unchanged: every new field is optional."""

IMAGE_PLACEHOLDER = "<image>"
VIDEO_PLACEHOLDER = "<video>"  # one per record with media.video, in the user turn

# Tasks a record can carry; consumers pick prompts and metrics by these names.
TASKS = MappingProxyType(
    {
        "closed_vqa": "question with a closed answer set (是/否, a class name)",
        "open_vqa": "question with a free-text answer",
        "caption": "describe the image",
        "report": "write a (one-sentence) report or impression",
        "report_screening": "pick the images that a report describes, and their duplicates",
        "lesion_classification": "benign / malignant / normal (or a phantom's finding: none / oval / irregular)",
        "instrument_recognition": "which surgical instruments are visible",
        "organ_recognition": "which organs are visible",
        "object_detection": "boxes of instruments and organs",
        "modality_recognition": "ultrasound vs CT vs MR",
        "screening": "is the image relevant / usable",
        "question_generation": "ask a question that the labels can answer",
        "text_instruction": "text-only medical instruction (no image)",
        "preference": "a question with a preferred and a rejected answer (DPO self-training)",
    }
)

# Canonical modality codes; converters map source spellings onto these.
MODALITIES = MappingProxyType(
    {
        "US": "超声",
        "CT": "CT",
        "MR": "磁共振",
        "X-ray": "X线",
        "endoscopic_video": "腔镜视频",
        "pathology": "病理",
        "text": "文本",
        "other": "其他",
    }
)


class Turn(BaseModel):
    """One message; user text holds one ``<image>`` placeholder per image of the record."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str


class DicomFrameRef(BaseModel):
    """A frame of a DICOM file (path relative to the media root)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    frame: int = Field(0, ge=0)


class VideoRef(BaseModel):
    """A video (file or folder of ordered frames) and the part of it that matters."""

    model_config = ConfigDict(extra="forbid")

    path: str
    frame_indices: list[int] = Field(default_factory=list)
    start_s: float | None = None
    end_s: float | None = None


def outside_root_reason(relative: str, root: str | Path | None) -> str | None:
    """Why reading ``relative`` under the media ``root`` would leave that root, or None if it stays.

    The media root is the folder a record's paths are read from: the override a reader was given
    (``--image-root``/``--media-root``), else the record's ``media.root``, else (no root at all)
    the reader's own base folder. The root itself may be absolute (converters store absolute
    roots), but not the file system's root, which would hold every file; the paths under it must
    be relative and must not climb out of it with ``..``. The check is on the path as written, so a
    symbolic link placed inside the root by the dataset's owner is followed.
    """
    if PurePath(relative).anchor:
        return "an absolute path (media paths are relative to the media root)"
    if os.path.normpath(relative).split(os.sep)[0] == os.pardir:
        return "climbs out of the media root with '..'"
    if root is not None:
        base = PurePath(os.path.normpath(root))
        if base.anchor and base == PurePath(base.anchor):
            return f"media root {str(root)!r} is the whole file system"
    return None


class Media(BaseModel):
    """What the model looks at. Paths are relative to ``root`` (absolute root kept by converters)."""

    model_config = ConfigDict(extra="forbid")

    root: str | None = None
    images: list[str] = Field(default_factory=list)
    dicom: list[DicomFrameRef] = Field(default_factory=list)
    video: VideoRef | None = None

    @property
    def count(self) -> int:
        """Visual inputs that take an ``<image>`` placeholder (images and DICOM frames)."""
        return len(self.images) + len(self.dicom)

    def resolve(self, relative: str, root: str | Path | None = None) -> Path:
        """Absolute path of one media file; ``root`` overrides the stored root.

        It does not check that the path stays inside its root: readers call
        :func:`outside_root_reason` first.
        """
        base = root if root is not None else self.root
        return Path(base) / relative if base is not None else Path(relative)

    def all_paths(self, root: str | Path | None = None) -> list[Path]:
        """Every file this record needs on disk."""
        rels = [*self.images, *(ref.path for ref in self.dicom)]
        if self.video is not None:
            rels.append(self.video.path)
        return [self.resolve(rel, root) for rel in rels]


class OrientedBox(BaseModel):
    """A box as four corner points normalised to [0, 1] (axis-aligned boxes are a special case)."""

    model_config = ConfigDict(extra="forbid")

    label: str
    points: list[tuple[float, float]]

    @field_validator("points")
    @classmethod
    def _four_points(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(points) != 4:
            raise ValueError(f"an oriented box needs 4 points, got {len(points)}")
        return points


class Labels(BaseModel):
    """Structured ground truth: class names, boxes, and per-image roles for multi-image tasks."""

    model_config = ConfigDict(extra="forbid")

    classes: list[str] = Field(default_factory=list)
    boxes: list[OrientedBox] = Field(default_factory=list)
    image_roles: list[str] = Field(default_factory=list)


class Reasoning(BaseModel):
    """Layered reasoning: what is seen -> what it implies -> the answer; each layer optional.

    The four lists are the facts LLaVA-Surg's first stage extracts from expert text
    (observations, reasons, plans, deductions); generated questions cite them by kind and index.
    """

    model_config = ConfigDict(extra="forbid")

    perception: str | None = None
    inference: str | None = None
    conclusion: str | None = None
    observations: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    plans: list[str] = Field(default_factory=list)
    deductions: list[str] = Field(default_factory=list)


class Preference(BaseModel):
    """Two answers to the record's question, one preferred by a judge (STLLaVA-Med's DPO pairs)."""

    model_config = ConfigDict(extra="forbid")

    chosen: Turn
    rejected: Turn
    judge: str = Field(min_length=1)
    reason: str | None = None
    scores: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _assistant_turns(self) -> Preference:
        if self.chosen.role != "assistant" or self.rejected.role != "assistant":
            raise ValueError("chosen and rejected must be assistant turns")
        if self.chosen.content == self.rejected.content:
            raise ValueError("chosen and rejected answers are identical")
        return self


class Record(BaseModel):
    """One training or evaluation example from any source, in any language, for any task."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    source: str
    licence: str
    specialty: str
    modality: str
    language: Literal["zh", "en"]
    task: str
    media: Media = Field(default_factory=Media)
    conversations: list[Turn] = Field(default_factory=list)
    answer_type: Literal["closed", "open"] | None = None
    labels: Labels = Field(default_factory=Labels)
    reasoning: Reasoning | None = None
    preference: Preference | None = None
    split: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @field_validator("schema_version")
    @classmethod
    def _readable_version(cls, version: int) -> int:
        if not 1 <= version <= SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {version} is not readable by this ultra (knows 1 to {SCHEMA_VERSION}); upgrade ultra"
            )
        return version

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
        return task

    @field_validator("modality")
    @classmethod
    def _known_modality(cls, modality: str) -> str:
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
        return modality

    @model_validator(mode="after")
    def _placeholders_match_media(self) -> Record:
        placeholders = sum(t.content.count(IMAGE_PLACEHOLDER) for t in self.conversations if t.role == "user")
        if self.conversations and placeholders != self.media.count:
            raise ValueError(
                f"conversations hold {placeholders} {IMAGE_PLACEHOLDER} placeholder(s) "
                f"but media has {self.media.count} image(s)/frame(s)"
            )
        return self

    def derive(self, **changes: Any) -> Record:
        """A validated copy with some fields replaced (``model_copy`` would skip validation)."""
        return Record.model_validate({**self.model_dump(), **changes})

    def _first(self, role: str) -> str | None:
        for turn in self.conversations:
            if turn.role == role:
                return turn.content.replace(IMAGE_PLACEHOLDER, "").replace(VIDEO_PLACEHOLDER, "").strip()
        return None

    @property
    def question(self) -> str | None:
        """First user turn without image and video placeholders (prompts put them back)."""
        return self._first("user")

    @property
    def answer(self) -> str | None:
        """First assistant turn."""
        return self._first("assistant")


def user_prompt(question: str, n_images: int) -> str:
    """A user turn with one placeholder per image, placeholders first (LLaVA's convention)."""
    return "\n".join([IMAGE_PLACEHOLDER] * n_images + [question])


def qa_turns(question: str, answer: str, n_images: int = 1) -> list[Turn]:
    """A single question/answer exchange."""
    return [
        Turn(role="user", content=user_prompt(question, n_images)),
        Turn(role="assistant", content=answer),
    ]
