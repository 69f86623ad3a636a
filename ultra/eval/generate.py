"""Step one of an evaluation: answer every question of a dataset into an answers JSONL.

Batched through ``ultra.inference.generate_answers`` and resumable: answers are appended after
each batch, and a rerun skips ids already in the file. A record whose media is missing is
reported (logged and returned), never dropped silently; ``strict=True`` makes it an error. With
``blank_images=True`` (the blind-image check) the model sees blank images, so missing media do
not matter and a neutral placeholder stands in for it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from ultra.dicom.errors import DicomReadError
from ultra.eval.answers import answered_ids, append_answers

log = logging.getLogger(__name__)

PLACEHOLDER_SIZE = (224, 224)


class MissingMediaError(FileNotFoundError):
    """Raised with ``strict=True`` when records point at files that are not on disk."""


@dataclass
class GenerationReport:
    """What one ``generate`` call did."""

    answers_path: Path
    answered: int = 0
    already_answered: int = 0
    missing_media: list[tuple[str, str]] = field(default_factory=list)


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def load_record_images(record: Any, image_root: str | Path | None = None) -> list[Image.Image]:
    """RGB images of a record: its image files, then its DICOM frames (via ``ultra.dicom``)."""
    images = [_open_rgb(record.media.resolve(rel, image_root)) for rel in record.media.images]
    if record.media.dicom:
        from ultra.dicom import load_dicom_image

        images += [
            load_dicom_image(record.media.resolve(ref.path, image_root), ref.frame)
            for ref in record.media.dicom
        ]
    return images


def _missing_path(record: Any, image_root: str | Path | None) -> str | None:
    for path in record.media.all_paths(image_root):
        if not path.exists():
            return str(path)
    return None


def generate_answers_file(
    model: Any,
    processor: Any,
    records: Sequence[Any],
    answers_path: str | Path,
    image_root: str | Path | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    blank_images: bool = False,
    strict: bool = False,
    limit: int | None = None,
    show_progress: bool = True,
) -> GenerationReport:
    """Answer the records not yet in ``answers_path`` (at most ``limit`` of them), batch by batch."""
    from ultra.inference import generate_answers

    answers_path = Path(answers_path)
    done = answered_ids(answers_path)
    report = GenerationReport(answers_path, already_answered=sum(r.id in done for r in records))
    todo = []
    for record in records:
        if record.id in done:
            continue
        missing = None if blank_images else _missing_path(record, image_root)
        if missing is not None:
            report.missing_media.append((record.id, missing))
        else:
            todo.append(record)
    if report.missing_media:
        first_id, first_path = report.missing_media[0]
        message = f"{len(report.missing_media)} record(s) have missing media, e.g. {first_id}: {first_path}"
        if strict:
            raise MissingMediaError(message)
        log.warning("%s; they are not answered (pass strict to fail instead)", message)
    if limit is not None:
        todo = todo[:limit]
    if report.already_answered:
        log.info("%s: %d answered already, %d to go", answers_path, report.already_answered, len(todo))
    description = "answering (blank images)" if blank_images else "answering (images)"
    with tqdm(total=len(todo), unit="q", desc=description, disable=not show_progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            ready, requests = [], []
            for record in batch:
                try:
                    requests.append(request_for(record, image_root, blank_images))
                    ready.append(record)
                except (OSError, ValueError, DicomReadError) as error:  # one bad file must not end the run
                    if strict:
                        raise MissingMediaError(f"{record.id}: unreadable media ({error})") from error
                    log.warning("%s: unreadable media, not answered (%s)", record.id, error)
                    report.missing_media.append((record.id, f"unreadable: {error}"))
            texts = (
                generate_answers(
                    model,
                    processor,
                    requests,
                    batch_size=batch_size,
                    max_new_tokens=max_new_tokens,
                    blank_images=blank_images,
                )
                if requests
                else []
            )
            rows = [
                {"id": r.id, "question": r.question, "answer": text, "blank_images": blank_images}
                for r, text in zip(ready, texts, strict=True)
            ]
            report.answered += append_answers(rows, answers_path)
            bar.update(len(batch))
    return report


def _video_frames(record: Any, image_root: str | Path | None) -> list[Image.Image] | None:
    """Frames of a record's video (its listed frame indices, else all; the processor samples)."""
    video = record.media.video
    if video is None:
        return None
    from fusion.video import read_video_frames

    return read_video_frames(record.media.resolve(video.path, image_root), video.frame_indices or None)


def request_for(record: Any, image_root: str | Path | None = None, blank_images: bool = False):
    """The ``VQARequest`` of one record; for a blind run, absent media become neutral placeholders."""
    from ultra.inference import VQARequest

    question = record.question or ""
    if blank_images and _missing_path(record, image_root) is not None:
        grey = Image.new("RGB", PLACEHOLDER_SIZE, (127, 127, 127))
        frames = [grey] * 4 if record.media.video is not None else None
        return VQARequest(images=[grey] * record.media.count, question=question, video_frames=frames)
    return VQARequest(
        images=load_record_images(record, image_root),
        question=question,
        video_frames=_video_frames(record, image_root),
    )
