"""Chinese modality questions from DICOM headers: 超声 vs CT vs 磁共振."""

from __future__ import annotations

from pathlib import Path

from data_zh.builders.phrasing import pick
from data_zh.converters.dicom import convert_dicom
from data_zh.schema import MODALITIES, Record, qa_turns
from data_zh.splits import load_split

MODALITY_QUESTIONS = ("这张图像是什么成像方式？", "该医学图像属于哪种检查？", "请判断这张图像的成像模态。")
IS_ULTRASOUND_QUESTIONS = ("这是超声图像吗？", "该图像是否为超声检查？")


def build_dicom_instructions(
    dicom_root: str | Path, split: str = "train", all_frames: bool = False
) -> list[Record]:
    """Per file of the committed split (every frame when ``all_frames``): the modality in Chinese
    and 是/否 for "is this ultrasound", both from the file's Modality tag."""
    splits = load_split("dicom")
    if split not in splits:
        raise ValueError(f"unknown dicom split {split!r}; known: {sorted(splits)}")
    wanted = set(splits[split])
    records = []
    for item in convert_dicom(dicom_root):
        ref = item.media.dicom[0]
        if ref.path not in wanted:
            continue
        frames = range(item.extra["dicom"]["NumberOfFrames"]) if all_frames else range(1)
        for frame in frames:
            media = item.media.model_copy(update={"dicom": [ref.model_copy(update={"frame": frame})]})
            key = f"{ref.path}#{frame}"
            for kind, question, answer in (
                ("modality", pick(MODALITY_QUESTIONS, key), MODALITIES[item.modality]),
                (
                    "is_ultrasound",
                    pick(IS_ULTRASOUND_QUESTIONS, key),
                    "是" if item.modality == "US" else "否",
                ),
            ):
                records.append(
                    item.derive(
                        id=f"{item.id}-f{frame}-zh-{kind}",
                        task="modality_recognition" if kind == "modality" else "closed_vqa",
                        media=media,
                        conversations=qa_turns(question, answer),
                        split=split,
                        extra={**item.extra, "question_type": kind},
                    )
                )
    return records
