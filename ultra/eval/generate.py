"""Step one of an evaluation: answer every question of a dataset into an answers JSONL.

Batched through the front door (``ultra.Answerer``) and resumable: answers are appended after
each batch, and a rerun skips ids already in the file. A record whose media is missing is
reported (logged and returned), never dropped silently; ``strict=True`` makes it an error. With
``blank_images=True`` (the blind-image check) the model sees blank images, so missing media do
not matter and a neutral placeholder stands in for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from fusion.progress import progress_bar
from ultra.answerer import Answerer, GenerationSettings, Request
from ultra.eval.answers import answered_ids, append_answers, read_answers
from ultra.media import DEFAULT_LIMITS, MediaError, MediaLimits, read_record_media

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
    in_part_files: int = 0  # of those already answered: waiting in part files of an earlier sharded run
    missing_media: list[tuple[str, str]] = field(default_factory=list)


def _missing_path(record: Any, image_root: str | Path | None) -> str | None:
    for path in record.media.all_paths(image_root):
        if not path.exists():
            return str(path)
    return None


def process_state() -> Any:
    """accelerate's view of this process (rank, count, device); several CPU processes too, which
    ``PartialState`` only recognises when told that there is no accelerator."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def _no_wait() -> None:
    return None


@dataclass(frozen=True)
class Shard:
    """This process's share of the records: every ``count``-th one from ``index``.

    ``wait`` blocks until every process reached it. The processes must share out one and the same
    list of unanswered records, so each reads what is already answered before any of them writes:
    a process that looked later would see another's fresh answers, share out a shorter list and
    leave records unanswered."""

    index: int = 0
    count: int = 1
    wait: Callable[[], None] = field(default=_no_wait, compare=False, repr=False)

    @classmethod
    def from_accelerate(cls) -> Shard:
        """The shard of this process under ``accelerate launch``/``torchrun`` (one when not launched)."""
        state = process_state()
        return cls(state.process_index, state.num_processes, state.wait_for_everyone)

    def part_path(self, answers_path: Path) -> Path:
        """Where this process appends its answers before the parts are joined."""
        return answers_path.with_name(f"{answers_path.name}.part{self.index}-of-{self.count}")


def _part_files(answers_path: Path) -> list[Path]:
    return sorted(answers_path.parent.glob(f"{answers_path.name}.part*-of-*"))


def join_parts(answers_path: str | Path) -> int:
    """Append the per-process part files to the answers file (once, skipping ids already there)
    and remove them; returns how many answers moved. Called by the main process at the end."""
    answers_path = Path(answers_path)
    done = answered_ids(answers_path)
    moved = 0
    for part in _part_files(answers_path):
        rows = [row for row in read_answers(part) if str(row["id"]) not in done]
        moved += append_answers(rows, answers_path)
        done.update(str(row["id"]) for row in rows)
        part.unlink()
    return moved


def _unanswered(
    records: Sequence[Any],
    answers_path: Path,
    image_root: str | Path | None,
    blank_images: bool,
    strict: bool,
) -> tuple[GenerationReport, list[Any]]:
    """The records still to answer and a report counting the answered ones (those in leftover
    part files too) and those whose media are missing (an error with ``strict``)."""
    done = answered_ids(answers_path)
    parked = {key for part in _part_files(answers_path) for key in answered_ids(part)} - done
    done |= parked
    report = GenerationReport(
        answers_path, already_answered=sum(r.id in done for r in records), in_part_files=len(parked)
    )
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
    return report, todo


def _batch_requests(
    batch: Sequence[Any],
    report: GenerationReport,
    image_root: str | Path | None,
    blank_images: bool,
    strict: bool,
    settings: GenerationSettings,
    limits: MediaLimits,
    allow_outside_root: bool,
) -> tuple[list[Any], list[Request]]:
    """The requests of one batch and the records they answer; a record whose media cannot be
    read is reported and skipped, so one bad file does not end the run (unless ``strict``)."""
    ready, requests = [], []
    for record in batch:
        try:
            requests.append(
                request_for(
                    record, image_root, blank_images, settings, limits=limits, allow_outside_root=allow_outside_root
                )
            )
            ready.append(record)
        except MediaError as error:
            if strict:
                raise MissingMediaError(f"{record.id}: unreadable media ({error})") from error
            log.warning("%s: unreadable media, not answered (%s)", record.id, error)
            report.missing_media.append((record.id, f"unreadable: {error}"))
    return ready, requests


def generate_answers_file(
    answerer: Answerer,
    records: Sequence[Any],
    answers_path: str | Path,
    image_root: str | Path | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    blank_images: bool = False,
    strict: bool = False,
    limit: int | None = None,
    show_progress: bool = True,
    shard: Shard | None = None,
    limits: MediaLimits = DEFAULT_LIMITS,
    allow_outside_root: bool = False,
) -> GenerationReport:
    """Answer the records not yet in ``answers_path`` (at most ``limit`` of them), batch by batch.

    Media are read under ``limits``; a path leaving its media root is unreadable media unless
    ``allow_outside_root`` (see ``ultra.media.records``).

    With a ``shard`` (several processes under ``accelerate launch``) each process answers its
    share into a part file beside ``answers_path``; ``join_parts`` merges them once every process
    is done. Ids in leftover part files of a killed run count as answered, so reruns resume.
    """
    shard = shard or Shard()
    answers_path = Path(answers_path)
    report, todo = _unanswered(records, answers_path, image_root, blank_images, strict)
    if limit is not None:
        todo = todo[:limit]
    todo = todo[shard.index :: shard.count]
    shard.wait()  # every process has read the answered ids: writing may start
    target = answers_path if shard.count == 1 else shard.part_path(answers_path)
    if report.already_answered:
        log.info("%s: %d answered already, %d to go", answers_path, report.already_answered, len(todo))
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    label = "answering (blank images)" if blank_images else "answering (images)"
    if shard.count > 1:
        label += f" [process {shard.index + 1}/{shard.count}]"
    with progress_bar(total=len(todo), unit="q", description=label, enabled=show_progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            ready, requests = _batch_requests(
                batch, report, image_root, blank_images, strict, settings, limits, allow_outside_root
            )
            answers = answerer.answer(requests, batch_size=batch_size) if requests else []
            rows = [
                {"id": r.id, "question": r.question, "answer": answer.text, "blank_images": blank_images}
                for r, answer in zip(ready, answers, strict=True)
            ]
            report.answered += append_answers(rows, target)
            bar.update(len(batch))
    return report


def request_for(
    record: Any,
    image_root: str | Path | None = None,
    blank_images: bool = False,
    settings: GenerationSettings | None = None,
    *,
    limits: MediaLimits = DEFAULT_LIMITS,
    allow_outside_root: bool = False,
) -> Request:
    """The ``Request`` of one record; for a blind run, absent media become neutral placeholders
    (the model sees blank images either way)."""
    question = record.question or ""
    settings = settings or GenerationSettings()
    if blank_images and _missing_path(record, image_root) is not None:
        grey = Image.new("RGB", PLACEHOLDER_SIZE, (127, 127, 127))
        frames = [grey] * 4 if record.media.video is not None else None
        return Request(question, [grey] * record.media.count, frames, settings=settings, blank_images=True)
    media = read_record_media(record, image_root, limits=limits, allow_outside_root=allow_outside_root)
    return Request(question, media.images, media.video_frames, settings=settings, blank_images=blank_images)
