"""Step 1 of self-training: the policy asks its own questions about unlabelled images and samples
K answers to each (STLLaVA-Med's self-questioning), written to a resumable JSONL file.

Questions come from the task the embedded model was trained on (``question_generation``: the
prompt of ``data_zh.builders.busi``, answered as ``问题：…答案：…``); an output that holds no
question falls back to the template pool, and the count of fallbacks is reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data_zh.builders.busi import (
    LESION_QUESTIONS,
    MALIGNANCY_QUESTIONS,
    QUESTION_GENERATION_PROMPTS,
    SITE_QUESTIONS,
)
from data_zh.io import jsonl_lines, parse_json_bytes
from data_zh.schema import Record, qa_turns
from fusion.progress import progress_bar
from ultra.answerer import Answerer, GenerationSettings, Request
from ultra.media import MediaError, read_record_images
from ultra.selftrain.config import GenerateSettings

logger = logging.getLogger(__name__)

QUESTION_PROMPT = QUESTION_GENERATION_PROMPTS[0]
TEMPLATE_QUESTIONS = (*LESION_QUESTIONS, *MALIGNANCY_QUESTIONS, *SITE_QUESTIONS)
_QUESTION = re.compile(r"问题[:：]\s*(.+?)\s*(?:答案[:：]|$)", re.S)
IMAGES_PER_CHUNK = 8


@dataclass
class Candidates:
    """One self-asked question about one image and the policy's K sampled answers.

    ``record`` is a unified-schema record (the question as its user turn, the image's labels kept
    for a label judge); ``question_source`` is ``model`` or ``template``."""

    record: Record
    answers: list[str]
    question_source: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "record": self.record.model_dump(mode="json"),
                "answers": self.answers,
                "question_source": self.question_source,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, line: bytes) -> Candidates:
        row = parse_json_bytes(line)
        return cls(Record.model_validate(row["record"]), list(row["answers"]), row["question_source"])


@dataclass
class GenerateReport:
    """What a generate run did (resumed images are the ones already in the file)."""

    images: int = 0
    resumed_images: int = 0
    items: int = 0
    template_fallbacks: int = 0
    failed_images: list[str] = field(default_factory=list)


def read_candidates(path: str | Path) -> list[Candidates]:
    """Every complete line of a candidates file (a line cut by a killed run is skipped)."""
    rows = []
    for number, line in jsonl_lines(path):
        try:
            rows.append(Candidates.from_json(line))
        except (ValueError, KeyError) as error:
            logger.warning(
                "%s:%d: unreadable candidates line skipped (%s)", path, number, type(error).__name__
            )
    return rows


def _question_record(image: Record, index: int, question: str) -> Record:
    n_images = image.media.count
    return image.derive(
        id=f"{image.id}-q{index}",
        task="open_vqa",
        conversations=[turn.model_dump() for turn in qa_turns(question, "", n_images)[:1]],
        answer_type=None,
        preference=None,
        reasoning=None,
        extra={"image_id": image.id},
    )


def parse_question(text: str) -> str | None:
    """The question of a ``问题：…答案：…`` output; None when there is none."""
    match = _QUESTION.search(text)
    question = match.group(1).strip() if match else ""
    return question if len(question) >= 4 else None


def template_question(image_id: str, index: int) -> str:
    """A pool question, fixed per (image, index) so a resumed run asks the same."""
    digest = hashlib.sha256(f"{image_id}/{index}".encode()).digest()
    return TEMPLATE_QUESTIONS[int.from_bytes(digest[:4], "big") % len(TEMPLATE_QUESTIONS)]


def _done_images(path: Path) -> set[str]:
    """Images already in the file; a last line cut by a killed run is removed first."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)
    return {row.record.extra.get("image_id", "") for row in read_candidates(path)}


def _chunks(items: Sequence[Record], size: int) -> Iterator[Sequence[Record]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ask(
    answerer: Answerer,
    images: Sequence[tuple[Record, list]],
    settings: GenerateSettings,
    seed: int,
    report: GenerateReport,
) -> list[list[tuple[str, str]]]:
    """Per image, ``questions_per_image`` distinct (question, source) pairs."""
    per_image = settings.questions_per_image
    asked: list[list[str | None]] = [[] for _ in images]
    if settings.questions == "model":
        ask = GenerationSettings(
            max_new_tokens=settings.question_max_new_tokens,
            temperature=settings.question_temperature,
            top_p=settings.top_p,
            seed=seed,
        )
        # a few more draws than needed, so duplicates still leave enough distinct questions
        draws = per_image + 2
        requests = [
            Request(QUESTION_PROMPT, pixels, settings=ask) for _, pixels in images for _ in range(draws)
        ]
        outputs = answerer.answer(requests, batch_size=settings.batch_size)
        for slot in range(len(images)):
            asked[slot] = [parse_question(out.text) for out in outputs[slot * draws : (slot + 1) * draws]]
    questions: list[list[tuple[str, str]]] = []
    for (image, _), drafts in zip(images, asked, strict=True):
        chosen: list[tuple[str, str]] = []
        for draft in drafts:
            if draft and draft not in {q for q, _ in chosen} and len(chosen) < per_image:
                chosen.append((draft, "model"))
        index = 0
        while len(chosen) < per_image:
            question = template_question(image.id, index)
            index += 1
            if question not in {q for q, _ in chosen}:
                chosen.append((question, "template"))
                if settings.questions == "model":
                    report.template_fallbacks += 1
        questions.append(chosen)
    return questions


def generate_candidates(
    answerer: Answerer,
    images: Sequence[Record],
    out_path: str | Path,
    settings: GenerateSettings,
    seed: int = 0,
    show_progress: bool = True,
) -> GenerateReport:
    """Ask and answer for every image not yet in ``out_path`` (resumable: a killed run continues
    with the next unfinished image); one unreadable image is reported and skipped."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = _done_images(out_path)
    todo = [image for image in images if image.id not in done]
    report = GenerateReport(images=len(images), resumed_images=len(images) - len(todo))
    answer_settings = GenerationSettings(
        max_new_tokens=settings.answer_max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        seed=seed + 1,
    )
    bar = progress_bar(
        total=len(images),
        initial=report.resumed_images,
        description="selftrain generate",
        unit="image",
        enabled=show_progress,
    )
    with bar, out_path.open("a", encoding="utf-8") as sink:
        for chunk in _chunks(todo, IMAGES_PER_CHUNK):
            readable = []
            for image in chunk:
                try:
                    readable.append((image, read_record_images(image)))
                except (MediaError, OSError) as error:
                    reason = error.reason if isinstance(error, MediaError) else type(error).__name__
                    logger.warning("image %s skipped: %s", image.id, reason)
                    report.failed_images.append(image.id)
            questions = _ask(answerer, readable, settings, seed, report)
            items = [
                (_question_record(image, index, question), pixels, source)
                for (image, pixels), asked in zip(readable, questions, strict=True)
                for index, (question, source) in enumerate(asked)
            ]
            k = settings.answers_per_question
            requests = [
                Request(record.question or "", pixels, settings=answer_settings)
                for record, pixels, _ in items
                for _ in range(k)
            ]
            answers = answerer.answer(requests, batch_size=settings.batch_size)
            for position, (record, _, source) in enumerate(items):
                texts = [answer.text.strip() for answer in answers[position * k : (position + 1) * k]]
                sink.write(Candidates(record, texts, source).to_json() + "\n")
                report.items += 1
            sink.flush()
            bar.update(len(chunk))
    return report
