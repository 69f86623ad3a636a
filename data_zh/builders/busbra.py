"""BUS-BRA closed questions with gold answers from bus_data.csv (the BUS-BRA evaluation set).

The questions and answers are BUSI's (``data_zh.builders.busi``), so scores compare across the two
datasets: 检查部位 (乳腺), 是否可见病灶 (always 是: every BUS-BRA image shows a biopsied lesion)
and 良性还是恶性 from ``Pathology``. Each record keeps the image's facts (histology, BI-RADS,
scanner, patient, view, box, mask files, official fold) for per-scanner and per-fold results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_zh.builders.busi import SITE_ANSWER, lesion_answer, malignancy_answer, malignancy_kind
from data_zh.builders.phrasing import pick
from data_zh.builders.wordings import WordingSet, question_wordings
from data_zh.converters.busbra import busbra_record, read_busbra_rows
from data_zh.schema import Labels, Record, qa_turns


def _images_of(split: str, rows: dict[str, dict[str, Any]]) -> list[tuple[str, str | None]]:
    """``(image ID, split tag)`` of one committed split, or of every row for ``"all"``."""
    from data_zh.splits import load_split, split_lookup

    if split == "all":
        tags = split_lookup("busbra")
        return [(image_id, tags.get(image_id)) for image_id in sorted(rows)]
    splits = load_split("busbra")
    if split not in splits:
        raise ValueError(f"unknown busbra split {split!r}; known: {sorted(splits)} or 'all'")
    return [(image_id, split) for image_id in splits[split] if image_id in rows]


def build_busbra_vqa(root: str | Path, split: str = "val", wordings: WordingSet = "train") -> list[Record]:
    """Site, lesion and 良恶性 questions per image of one committed split (``"all"``: every row).

    ``wordings="train"`` asks each question in its first wording (scores compare across runs);
    ``"heldout"`` draws one held-out wording per image and question by a stable hash.
    """
    root = Path(root)
    rows = read_busbra_rows(root)
    records = []
    for image_id, tag in _images_of(split, rows):
        facts = rows[image_id]
        pathology = facts["pathology"]
        asked = [
            ("site", SITE_ANSWER),
            ("lesion", lesion_answer(pathology)),
            (malignancy_kind(pathology), malignancy_answer(pathology)),
        ]
        image = busbra_record(root, image_id, facts, tag)  # the image's facts, once
        for kind, answer in asked:
            questions = question_wordings(kind, wordings)
            question = questions[0] if wordings == "train" else pick(questions, image_id, kind)
            records.append(
                image.derive(
                    id=f"busbra-zh-{kind}-{image_id.removeprefix('bus_')}",
                    task="closed_vqa",
                    conversations=qa_turns(question, answer),
                    labels=Labels(classes=[pathology]),
                    extra={"question_type": kind, "wordings": wordings, **image.extra},
                )
            )
    return records
