"""Chinese video QA on laparoscopy clips (LLaVA-Surg's video questions), answers from the box labels.

A clip is ``clip_frames`` consecutive frames of one temporal block of the committed split (frames
of one video in frame-index order; a block never crosses the gap between splits). Each clip is a
``VideoRef`` to the frame folder with the clip's positions in it, so training, ``ultra ask`` and
``ultra eval`` read it through ``ultra.media.read_video`` like any other video.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from data_zh.builders.phrasing import pick
from data_zh.converters.laparoscopy import convert_laparoscopy, visible_classes, zh_names
from data_zh.schema import VIDEO_PLACEHOLDER, Labels, Media, Record, Turn, VideoRef

CLIP_FRAMES = 4
CLIP_STRIDE = 2

INSTRUMENT_QUESTIONS = (
    "这段腹腔镜视频中出现了哪些手术器械？",
    "请列出这段手术视频里出现的器械。",
    "视频片段中可以看到哪些器械？",
)
GALLBLADDER_QUESTIONS = ("这段视频中是否可见胆囊？", "视频片段里能看到胆囊吗？", "这段画面中出现胆囊了吗？")
COUNT_QUESTIONS = ("这段视频中共出现了几种手术器械？", "视频片段里有几种不同的器械？")
CHANGE_QUESTIONS = (
    "从片段开始到结束，画面中的器械和器官有什么变化？",
    "比较这段视频的第一帧和最后一帧，出现或消失了什么？",
)
NO_CHANGE = "无变化"


@dataclass(frozen=True)
class Clip:
    """Consecutive frames of one split block: per-frame records and their positions in the folder."""

    frames: list[Record]
    positions: list[int]
    folder: str
    split: str

    @property
    def frame_numbers(self) -> list[int]:
        return [frame.extra["frame_index"] for frame in self.frames]


def clip_instruments(clip: Clip) -> list[str]:
    """Instrument classes seen in any frame of the clip, by class name (one answer per set)."""
    return sorted(visible_classes([box for frame in clip.frames for box in frame.labels.boxes], "instrument"))


def clip_change(clip: Clip) -> str:
    """What appears and disappears between the first and the last frame (instruments and organs)."""
    first, last = set(clip.frames[0].labels.classes), set(clip.frames[-1].labels.classes)
    parts = []
    if appeared := sorted(last - first):
        parts.append(f"出现：{zh_names(appeared)}")
    if gone := sorted(first - last):
        parts.append(f"消失：{zh_names(gone)}")
    return "；".join(parts) or NO_CHANGE


def _blocks(frames: list[Record]) -> Iterator[list[tuple[int, Record]]]:
    """Maximal runs of consecutive folder positions of one video that share one split (gap frames
    end a run)."""
    run: list[tuple[int, Record]] = []
    for position, frame in enumerate(frames):
        previous = run[-1][1] if run else None
        if previous is not None and (previous.split, previous.extra["video"]) != (
            frame.split,
            frame.extra["video"],
        ):
            yield run
            run = []
        run.append((position, frame))
    if run:
        yield run


def laparoscopy_clips(
    root: str | Path, split: str, clip_frames: int = CLIP_FRAMES, stride: int = CLIP_STRIDE
) -> list[Clip]:
    """Clips of ``clip_frames`` frames every ``stride`` frames within each block of ``split``.

    A block shorter than ``clip_frames`` gives one clip of all its frames (the model's frame
    sampler repeats frames of short clips). Positions index the folder's frames in frame order,
    which is the natural name order ``ultra.media.read_video`` lists a folder in.
    """
    if clip_frames < 1 or stride < 1:
        raise ValueError(f"clip_frames and stride must be positive, got {clip_frames} and {stride}")
    folders: dict[str, list[Record]] = {}
    for frame in convert_laparoscopy(root):
        folders.setdefault(str(Path(frame.media.images[0]).parent.as_posix()), []).append(frame)
    clips = []
    for folder, frames in sorted(folders.items()):
        frames.sort(key=lambda r: (r.extra["video"], r.extra["frame_index"] or 0, r.media.images[0]))
        for block in _blocks(frames):
            if block[0][1].split != split:
                continue
            starts = range(0, max(1, len(block) - clip_frames + 1), stride)
            for start in starts:
                window = block[start : start + clip_frames]
                clips.append(Clip([f for _, f in window], [p for p, _ in window], folder, split))
    return clips


def _clip_record(clip: Clip, kind: str, question: str, answer: str, task: str, closed: bool) -> Record:
    first = clip.frames[0]
    numbers = clip.frame_numbers
    return Record(
        id=f"laparoscopy-video-{first.extra['subset']}-{first.extra['video']}-{numbers[0]}-{numbers[-1]}-zh-{kind}",
        source="laparoscopy",
        licence=first.licence,
        specialty="surgery",
        modality="endoscopic_video",
        language="zh",
        task=task,
        media=Media(root=first.media.root, video=VideoRef(path=clip.folder, frame_indices=clip.positions)),
        conversations=[
            Turn(role="user", content=f"{VIDEO_PLACEHOLDER}\n{question}"),
            Turn(role="assistant", content=answer),
        ],
        answer_type="closed" if closed else "open",
        labels=Labels(classes=sorted({c for frame in clip.frames for c in frame.labels.classes})),
        split=clip.split,
        extra={
            "video": first.extra["video"],
            "frame_numbers": numbers,
            "frame_files": [frame.media.images[0] for frame in clip.frames],
            "question_type": kind,
        },
    )


def build_laparoscopy_video(
    root: str | Path, split: str = "train", clip_frames: int = CLIP_FRAMES, stride: int = CLIP_STRIDE
) -> list[Record]:
    """Per clip of the split: which instruments appear, is the gallbladder visible, how many
    instrument kinds, and what changes from the first to the last frame."""
    records = []
    for clip in laparoscopy_clips(root, split, clip_frames, stride):
        key = clip.frame_numbers[0]
        instruments = clip_instruments(clip)
        seen = {c for frame in clip.frames for c in frame.labels.classes}
        records += [
            _clip_record(
                clip,
                "instruments",
                pick(INSTRUMENT_QUESTIONS, key),
                zh_names(instruments),
                "instrument_recognition",
                False,
            ),
            _clip_record(
                clip,
                "gallbladder",
                pick(GALLBLADDER_QUESTIONS, key),
                "是" if "Gallbladder" in seen else "否",
                "closed_vqa",
                True,
            ),
            _clip_record(
                clip,
                "instrument_count",
                pick(COUNT_QUESTIONS, key),
                f"{len(instruments)}种",
                "closed_vqa",
                True,
            ),
            _clip_record(clip, "change", pick(CHANGE_QUESTIONS, key), clip_change(clip), "open_vqa", False),
        ]
    return records
