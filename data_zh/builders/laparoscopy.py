"""Chinese instructions from laparoscopy boxes: which instruments and organs are visible."""

from __future__ import annotations

from pathlib import Path

from data_zh.builders.phrasing import pick
from data_zh.converters.laparoscopy import CLASS_ZH, convert_laparoscopy, visible_classes, zh_names
from data_zh.schema import Record, qa_turns
from data_zh.splits import load_split

INSTRUMENT_QUESTIONS = (
    "图中可见哪些手术器械？",
    "这一帧腹腔镜画面里有哪些器械？",
    "请列出画面中出现的手术器械。",
)
ORGAN_QUESTIONS = (
    "图中可见哪些器官？",
    "这一帧腹腔镜画面里能看到哪些解剖结构？",
    "请列出画面中可见的器官。",
)
PRESENCE_QUESTIONS = ("图中是否可见{name}？", "画面中有{name}吗？", "这一帧里能看到{name}吗？")
QUESTION_GENERATION_PROMPTS = (
    "请针对这一帧腹腔镜图像提出一个可以根据画面回答的问题，并给出答案。",
    "看这张手术画面，提一个问题并回答它。",
)


def _question(
    frame: Record,
    split: str,
    kind: str,
    question: str,
    answer: str,
    task: str,
    closed: bool,
    target: str = "",
) -> Record:
    suffix = f"-{target}" if target else ""
    return frame.derive(
        id=f"{frame.id}-zh-{kind}{suffix}",
        task=task,
        conversations=qa_turns(question, answer),
        answer_type="closed" if closed else "open",
        split=split,
        extra={**frame.extra, "question_type": kind, "target_class": target or None},
    )


def build_laparoscopy_instructions(root: str | Path, split: str = "train") -> list[Record]:
    """Per frame of the committed split: instruments, organs, presence (是/否) of each known class,
    and question generation; every answer comes from the frame's box file."""
    splits = load_split("laparoscopy")
    if split not in splits:
        raise ValueError(f"unknown laparoscopy split {split!r}; known: {sorted(splits)}")
    wanted = set(splits[split])
    records = []
    for frame in convert_laparoscopy(root):
        image = frame.media.images[0]
        if image not in wanted:
            continue
        instruments = visible_classes(frame.labels.boxes, "instrument")
        organs = visible_classes(frame.labels.boxes, "organ")
        present = set(frame.labels.classes)

        records.append(
            _question(
                frame,
                split,
                "instruments",
                pick(INSTRUMENT_QUESTIONS, image),
                zh_names(instruments),
                "instrument_recognition",
                False,
            )
        )
        records.append(
            _question(
                frame,
                split,
                "organs",
                pick(ORGAN_QUESTIONS, image),
                zh_names(organs),
                "organ_recognition",
                False,
            )
        )
        for name in ("Gallbladder", "Liver", "Cautery", "Forceps"):
            question = pick(PRESENCE_QUESTIONS, image, name).format(name=CLASS_ZH[name][0])
            records.append(
                _question(
                    frame,
                    split,
                    "presence",
                    question,
                    "是" if name in present else "否",
                    "closed_vqa",
                    True,
                    name,
                )
            )
        if present:
            target = sorted(present)[0]
            generated = f"问题：图中是否可见{CLASS_ZH.get(target, (target,))[0]}？答案：是。"
        else:
            generated = "问题：图中可见哪些手术器械？答案：无。"
        records.append(
            _question(
                frame,
                split,
                "question_generation",
                pick(QUESTION_GENERATION_PROMPTS, image),
                generated,
                "question_generation",
                False,
            )
        )
    return records
