"""Video records train and are answered and scored by ``ultra eval``: their frames reach the model
through ``ultra.media`` (training used to drop them at the placeholder check)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from data_zh import Media, Record, write_records
from data_zh.schema import Turn, VideoRef
from ultra.answerer import Answerer
from ultra.eval import score_answers
from ultra.eval.answers import read_answers
from ultra.eval.generate import generate_answers_file
from ultra.model import build_model
from ultra.train import TrainConfig, Trainer
from ultra.train.checkpoint import latest_checkpoint, read_state

CLIP_SIZE = (70, 56)  # laparoscopy frames (1400x1120) downscaled 20x
PROJECTORS = "model.vision_tower.projectors."


def _write_clip(shared_data: Path, target: Path, start: int, count: int) -> None:
    folder = shared_data / "laparoscopy_frames" / "test" / "images"
    paths = sorted(folder.glob("*.jpg"), key=lambda p: int(re.search(r"mp4-(\d+)_jpg", p.name).group(1)))
    if len(paths) < start + count:
        pytest.skip(f"{folder} holds {len(paths)} frames, {start + count} needed")
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"MJPG"), 25, CLIP_SIZE)
    assert writer.isOpened(), "OpenCV cannot write MJPG"
    for path in paths[start : start + count]:
        frame = np.asarray(Image.open(path).convert("RGB").resize(CLIP_SIZE))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def test_video_records_train_two_steps_and_are_scored(shared_data: Path, tmp_path: Path) -> None:
    records = []
    for index, answer in enumerate(("胆囊", "肝脏")):
        _write_clip(shared_data, tmp_path / f"clip{index}.avi", start=40 * index, count=5)
        records.append(
            Record(
                id=f"clip-{index}",
                source="toy",
                licence="CC0",
                specialty="surgery",
                modality="endoscopic_video",
                language="zh",
                task="open_vqa",
                media=Media(root=str(tmp_path), video=VideoRef(path=f"clip{index}.avi")),
                conversations=[
                    Turn(role="user", content="<video>\n画面中是哪个器官？"),
                    Turn(role="assistant", content=answer),
                ],
                split="train",
            )
        )
    write_records(records, tmp_path / "records.jsonl")
    config = TrainConfig.model_validate(
        {
            "model": {"name_or_path": "in-memory"},
            "data": {"clips": {"kind": "records", "path": str(tmp_path / "records.jsonl")}},
            "stages": [{"name": "alignment", "train": [f"{PROJECTORS}*"], "batch_size": 2, "max_steps": 2}],
            "output_dir": str(tmp_path / "run"),
        }
    )
    torch.manual_seed(0)
    model, processor = build_model("debug-tiny", pretrained=False)
    before = {name: p.detach().clone() for name, p in model.named_parameters() if name.startswith(PROJECTORS)}

    result = Trainer(config, model_builder=lambda _: (model, processor), show_progress=False).run()

    assert result.skipped_records == []
    assert result.stages[0]["samples"] == 4  # two steps of two video records, none dropped
    losses = [row["loss"] for row in read_state(latest_checkpoint(tmp_path / "run")).history]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses), losses
    after = dict(model.named_parameters())
    # only the frames feed the projectors here, so a projector moves only if the video was used
    moved = [name for name, value in before.items() if not torch.equal(value, after[name])]
    assert moved, "no projector changed: the video frames did not reach the model"

    answerer = Answerer(model, processor, allow_untrained=True)
    report = generate_answers_file(
        answerer, records, tmp_path / "answers.jsonl", max_new_tokens=4, show_progress=False
    )
    assert report.answered == 2 and report.missing_media == []
    scores = score_answers(read_answers(tmp_path / "answers.jsonl"), records, n_resamples=0, breakdowns=())
    assert scores["n_answered"] == 2 and scores["n_missing"] == 0
