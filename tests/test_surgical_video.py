"""Surgical video QA on laparoscopy clips: answers come from the box files, and a clip reads the same
from the frame folder and from a losslessly encoded video file."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data_zh.builders import build_laparoscopy_video, laparoscopy_clips
from data_zh.converters.laparoscopy import CLASS_ZH
from data_zh.splits import load_split, load_split_payload
from ultra.eval.datasets import load_eval_records
from ultra.media import read_record_media, read_video


@pytest.fixture(scope="module")
def val_records(shared_data: Path):
    return build_laparoscopy_video(shared_data / "laparoscopy_frames", "val")


INSTRUMENTS = {name for name, (_, kind) in CLASS_ZH.items() if kind == "instrument"}


def _label_classes(root: Path, frame_file: str) -> set[str]:
    """Class names in a frame's YOLO label file, read here independently of the converter."""
    names = dict(
        line.split(maxsplit=1) for line in (root / "classes.txt").read_text().splitlines() if line.strip()
    )
    label = root / Path(frame_file).parent.parent / "labels" / f"{Path(frame_file).stem}.txt"
    lines = label.read_text().splitlines() if label.is_file() else []
    return {names[line.split()[0]].strip() for line in lines if line.strip()}


def _zh(classes: set[str]) -> str:
    return "、".join(CLASS_ZH[name][0] for name in sorted(classes)) or "无"


@pytest.mark.parametrize("split", ["train", "val"])
def test_every_clip_answer_matches_the_label_files(shared_data: Path, split: str) -> None:
    root = shared_data / "laparoscopy_frames"
    records = build_laparoscopy_video(root, split)
    clips: dict[tuple[str, ...], dict[str, str]] = {}
    for record in records:
        clips.setdefault(tuple(record.extra["frame_files"]), {})[record.extra["question_type"]] = (
            record.answer
        )
    assert len(clips) >= 5 and all(len(answers) == 4 for answers in clips.values())

    in_split = set(load_split("laparoscopy")[split])
    order = [f"test/images/{p.name}" for p in sorted((root / "test" / "images").iterdir())]
    order.sort(key=lambda rel: int(re.search(r"mp4-(\d+)_jpg", rel).group(1)))
    for files, answers in clips.items():
        assert set(files) <= in_split, f"clip {files[0]} leaves the {split} split"
        positions = [order.index(f) for f in files]
        assert positions == list(range(positions[0], positions[0] + len(files))), (
            f"clip {files[0]} skips frames"
        )
        per_frame = [_label_classes(root, f) for f in files]
        seen = set().union(*per_frame)
        first, last = per_frame[0], per_frame[-1]
        change = "；".join(
            part
            for part in (
                f"出现：{_zh(last - first)}" if last - first else "",
                f"消失：{_zh(first - last)}" if first - last else "",
            )
            if part
        )
        expected = {
            "instruments": _zh(seen & INSTRUMENTS),
            "gallbladder": "是" if "Gallbladder" in seen else "否",
            "instrument_count": f"{len(seen & INSTRUMENTS)}种",
            "change": change or "无变化",
        }
        assert answers == expected, f"clip {files[0]}…{files[-1]}: {answers} != {expected}"


def test_clip_positions_read_the_clip_frames_and_blocks_respect_the_gap(
    shared_data: Path, val_records
) -> None:
    root = shared_data / "laparoscopy_frames"
    dropped = set(load_split_payload("laparoscopy")["dropped"])
    clips = laparoscopy_clips(root, "val")
    for clip in clips:
        assert not {f.media.images[0] for f in clip.frames} & dropped
    clip = clips[0]
    record = next(r for r in val_records if r.extra["frame_files"][0] == clip.frames[0].media.images[0])
    frames = read_record_media(record).video_frames
    direct = read_video([root / f.media.images[0] for f in clip.frames])
    assert len(frames) == len(direct) == len(clip.frames)
    for got, want in zip(frames, direct, strict=True):
        assert np.array_equal(np.asarray(got), np.asarray(want))
    assert [r.id for r in load_eval_records("laparoscopy_video", root, "test")] == [r.id for r in val_records]


def test_clip_from_lossless_video_file_gives_the_same_tokens_as_the_frame_folder(
    shared_data: Path, tmp_path: Path, tiny_model, val_records
) -> None:
    """FFV1 is lossless, so the decoded frames (and every token after them) must be identical."""
    model, processor = tiny_model
    record = val_records[0]
    folder_frames = read_record_media(record).video_frames
    width, height = folder_frames[0].size
    target = tmp_path / "clip.mkv"
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"FFV1"), 25, (width, height))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write FFV1")
    for frame in folder_frames:
        writer.write(cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()

    file_frames = read_video(target)
    assert len(file_frames) == len(folder_frames)
    difference = max(
        int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())
        for a, b in zip(file_frames, folder_frames, strict=True)
    )
    assert difference == 0, f"lossless video differs from the frames by up to {difference} grey levels"
    with torch.no_grad():
        tokens = [
            model.model.get_video_features(
                processor.preprocess_images(processor.sample_frames(frames))
            ).pooler_output[0]
            for frames in (folder_frames, file_frames)
        ]
    assert tokens[0].shape[0] == processor.video_tokens
    largest = (tokens[0] - tokens[1]).abs().max().item()
    assert torch.equal(tokens[0], tokens[1]), f"video tokens differ by up to {largest}"


def test_surgical_config_trains_laparoscopy_clips_two_steps(shared_data: Path, tmp_path: Path) -> None:
    """configs/surgical-tiny.yaml as shipped (data, stage patterns), cut to two steps on the debug model:
    the laparoscopy_video source reaches the trainer and its frames move the projectors."""
    import math

    from ultra.model import build_model
    from ultra.train import Trainer, load_train_config
    from ultra.train.checkpoint import latest_checkpoint, read_state

    shipped = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "surgical-tiny.yaml")
    assert shipped.output_dir.startswith("runs/"), (
        "the non-commercial checkpoint must stay under git-ignored runs/"
    )
    data = {
        name: source.model_copy(update={"path": str(shared_data / "laparoscopy_frames")})
        for name, source in shipped.data.items()
    }
    stage = shipped.stages[0].model_copy(update={"max_steps": 2, "batch_size": 2})
    config = shipped.model_copy(
        update={
            "data": data,
            "stages": [stage],
            "validation": shipped.validation.model_copy(update={"source": None}),
            "output_dir": str(tmp_path / "run"),
            "threads": None,
        }
    )
    torch.manual_seed(0)
    model, processor = build_model("debug-tiny", pretrained=False)
    projectors = "model.vision_tower.projectors."
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith(projectors)}

    result = Trainer(config, model_builder=lambda _: (model, processor), show_progress=False).run()

    assert result.skipped_records == [] and result.stages[0]["samples"] == 4
    losses = [row["loss"] for row in read_state(latest_checkpoint(tmp_path / "run")).history]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses), losses
    after = dict(model.named_parameters())
    assert any(not torch.equal(value, after[name]) for name, value in before.items())
