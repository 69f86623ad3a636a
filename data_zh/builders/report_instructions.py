"""Instruction records from multi-image reports, with the report's images screened first.

A hospital report has one text and many images, most of them redundant; training on all of them
teaches the model noise. Each report becomes one instruction record (an impression question, the
report as the answer) over the images an ``ImageScreen`` keeps, or over all of them with their
weights in ``extra["image_weights"]``. ``data_zh`` sits below ``screening``, so the screen is
passed in (``ultra.screen.seams.builder_screen`` wraps a ``screening.ReportScreener``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from PIL import Image

from data_zh.builders.busi import IMPRESSION_QUESTIONS
from data_zh.schema import Labels, Media, Record, qa_turns
from fusion.pixels import read_image_file

# (report, images) -> per image (keep, weight); at least one image kept, weights sum to 1.
ImageScreen = Callable[[str, Sequence[Image.Image]], list[tuple[bool, float]]]
ScreenMode = Literal["drop", "weight"]


def _pictures(record: Record) -> list[Image.Image]:
    return [read_image_file(record.media.resolve(rel)) for rel in record.media.images]


def build_report_instructions(
    reports: Iterable[Record], screen: ImageScreen | None = None, mode: ScreenMode = "drop"
) -> list[Record]:
    """One ``report_impression`` record per report record (``extra["report"]`` + its images).

    ``screen=None`` keeps every image. ``mode="drop"``: only the kept images, in their order;
    ``mode="weight"``: every image, weights in ``extra["image_weights"]`` (input order).
    ``extra["screened_out"]`` lists the dropped images (paths as in the source record).
    """
    if mode not in ("drop", "weight"):
        raise ValueError(f"unknown screening mode {mode!r}; known: drop, weight")
    records = []
    for number, source in enumerate(reports):
        report = source.extra.get("report")
        if not isinstance(report, str) or not report or not source.media.images:
            raise ValueError(f"{source.id}: a report record needs extra['report'] and images")
        images = list(source.media.images)
        verdicts = (
            screen(report, _pictures(source))
            if screen is not None
            else [(True, 1 / len(images))] * len(images)
        )
        if len(verdicts) != len(images) or not any(keep for keep, _ in verdicts):
            raise ValueError(
                f"{source.id}: the screen returned {len(verdicts)} verdicts for {len(images)} images"
            )
        extra = {"report": report, "source_record": source.id}
        if mode == "drop":
            kept = [rel for rel, (keep, _) in zip(images, verdicts, strict=True) if keep]
            extra["screened_out"] = [rel for rel, (keep, _) in zip(images, verdicts, strict=True) if not keep]
        else:
            kept = images
            extra["image_weights"] = [weight for _, weight in verdicts]
        question = IMPRESSION_QUESTIONS[number % len(IMPRESSION_QUESTIONS)]
        records.append(
            Record(
                id=f"{source.id}-impression",
                source=source.source,
                licence=source.licence,
                specialty=source.specialty,
                modality=source.modality,
                language=source.language,
                task="report",
                media=Media(root=source.media.root, images=kept),
                conversations=qa_turns(question, report, n_images=len(kept)),
                answer_type="open",
                labels=Labels(classes=list(source.labels.classes)),
                split=source.split,
                extra=extra,
            )
        )
    return records
