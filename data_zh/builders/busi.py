"""Chinese instruction and evaluation data from BUSI labels only (no invented findings)."""

from __future__ import annotations

import logging
from pathlib import Path

from data_zh.builders.phrasing import pick, pick_distinct
from data_zh.builders.wordings import WordingSet, question_wordings
from data_zh.converters.busi import BUSI_LICENCE, LABEL_ZH, busi_mask_finder, read_busi_labels
from data_zh.masks import MASKS
from data_zh.schema import Labels, Media, Reasoning, Record, qa_turns
from data_zh.splits import load_split, split_lookup

logger = logging.getLogger(__name__)

SITE_QUESTIONS = question_wordings("site")
LESION_QUESTIONS = question_wordings("lesion")
MALIGNANCY_QUESTIONS = question_wordings("malignancy")
IMPRESSION_QUESTIONS = question_wordings("impression")
QUESTION_GENERATION_PROMPTS = (
    "请针对这张超声图像提出一个可以根据图像回答的问题，并给出答案。",
    "看这张图像，提一个医生可能会问的问题，并回答它。",
    "请根据图像内容生成一个问答对。",
)
SITE_ANSWER = "乳腺"
# 良性还是恶性 about an image without a lesion: the honest answer is not a class.
NO_LESION_ANSWER = "未见明确病灶"
IMPRESSIONS = {
    "normal": ("乳腺超声未见明确病灶。", "乳腺未见明显异常回声。"),
    "benign": ("乳腺可见病灶，考虑良性病变。", "乳腺内见局灶性病灶，倾向良性。"),
    "malignant": ("乳腺可见病灶，考虑恶性可能。", "乳腺内见局灶性病灶，倾向恶性。"),
}


def lesion_answer(label: str) -> str:
    """是 when BUSI labels the image benign or malignant, 否 for normal."""
    return "否" if label == "normal" else "是"


def malignancy_answer(label: str) -> str:
    """良性 / 恶性 for a lesion; 未见明确病灶 for a normal image (no class to give)."""
    return NO_LESION_ANSWER if label == "normal" else LABEL_ZH[label]


def malignancy_kind(label: str) -> str:
    """The question type of a 良恶性 question: ``malignancy`` whatever the image shows.

    A type is what was asked, never derived from the answer: a type of its own for normal images
    would hand the majority baseline (fit per question type) the gold answer of every one of them.
    The class metric is therefore three-way (良性 / 恶性 / 未见明确病灶).
    """
    return "malignancy"


def _closed_questions(label: str, which: WordingSet) -> list[tuple[str, tuple[str, ...], str]]:
    """(question type, wordings, gold answer) of every closed question about one image."""
    return [
        ("site", question_wordings("site", which), SITE_ANSWER),
        ("lesion", question_wordings("lesion", which), lesion_answer(label)),
        (malignancy_kind(label), question_wordings("malignancy", which), malignancy_answer(label)),
    ]


def _images_of(split: str, rows: dict[str, dict[str, str]], split_name: str) -> list[str]:
    """Images of one committed split that labels.csv has; ``"all"`` = every row (user folders)."""
    if split == "all":
        return sorted(rows)
    splits = load_split(split_name)
    if split not in splits:
        raise ValueError(f"unknown {split_name} split {split!r}; known: {sorted(splits)} or 'all'")
    wanted = splits[split]
    missing = [path for path in wanted if path not in rows]
    if missing:
        logger.warning(
            "%d image(s) of the %s %s split are not in labels.csv (e.g. %s)",
            len(missing),
            split_name,
            split,
            missing[0],
        )
    return [path for path in wanted if path in rows]


def _labelled_images(root: Path, split: str, split_name: str) -> list[tuple[str, str, str | None, list[str]]]:
    """``(image path, label, split tag, mask files)`` for each image the builders turn into records;
    with ``split="all"`` the tag is the image's committed split (None for a user's own images)."""
    rows = read_busi_labels(root)
    tags = split_lookup(split_name) if split == "all" else {}
    masks_of = busi_mask_finder(root)
    return [
        (path, rows[path]["label"], tags.get(path) if split == "all" else split, masks_of(path))
        for path in _images_of(split, rows, split_name)
    ]


def _record(
    root: Path, path: str, label: str, split: str | None, kind: str, question: str, answer: str, **kw
) -> Record:
    stem = Path(path).with_suffix("").as_posix().removeprefix("images/").replace(" ", "_")
    closed = kw.pop("answer_type", "closed")
    suffix = kw.pop("id_suffix", "")
    return Record(
        id=f"busi-zh-{kind}-{stem}{suffix}",
        source="busi",
        licence=BUSI_LICENCE,
        specialty="breast",
        modality="US",
        language="zh",
        media=Media(root=str(root.resolve()), images=[path]),
        conversations=qa_turns(question, answer),
        answer_type=closed,
        labels=Labels(classes=[label]),
        split=split,
        extra={"busi_label": label, "question_type": kind, MASKS: kw.pop("masks", []), **kw.pop("extra", {})},
        **kw,
    )


def _generated_question(path: str, label: str, salt: int = 0) -> str:
    options = [f"问题：{pick(SITE_QUESTIONS, path, 'qg-site', salt)}答案：{SITE_ANSWER}。"]
    options.append(f"问题：{pick(LESION_QUESTIONS, path, 'qg-lesion', salt)}答案：{lesion_answer(label)}。")
    if label != "normal":
        options.append(f"问题：{pick(MALIGNANCY_QUESTIONS, path, 'qg-malig', salt)}答案：{LABEL_ZH[label]}。")
    return pick(options, path, "qg", salt)


def _reasoning(label: str, impression: str) -> Reasoning:
    return Reasoning(
        perception="可见局灶性病灶" if label != "normal" else "未见明确局灶性病灶",
        inference=None if label == "normal" else f"病灶特征符合{LABEL_ZH[label]}病变",
        conclusion=impression,
    )


def build_busi_instructions(
    busi_root: str | Path,
    split: str = "train",
    split_name: str = "busi",
    phrasings: int = 1,
    wordings: WordingSet = "train",
) -> list[Record]:
    """Per image of the committed split (``"all"``: every labels.csv row, for user folders):
    检查部位, 是否可见病灶, 良性还是恶性 (未见明确病灶 on normal images), a one-sentence
    impression and a question-generation example; ``phrasings`` distinct wordings of each, chosen
    per image from the ``wordings`` set (training uses ``"train"``; ``"heldout"`` is for checks)."""
    if phrasings < 1:
        raise ValueError(f"phrasings must be >= 1, got {phrasings}")
    root = Path(busi_root)
    records = []
    for path, label, tag, masks in _labelled_images(root, split, split_name):
        impression = pick(IMPRESSIONS[label], path)
        for kind, questions, answer in _closed_questions(label, wordings):
            for index, question in enumerate(pick_distinct(questions, phrasings, path, kind)):
                suffix = f"-p{index}" if phrasings > 1 else ""
                records.append(
                    _record(
                        root,
                        path,
                        label,
                        tag,
                        kind,
                        question,
                        answer,
                        task="closed_vqa",
                        id_suffix=suffix,
                        masks=masks,
                    )
                )
        impression_questions = question_wordings("impression", wordings)
        for index, question in enumerate(pick_distinct(impression_questions, phrasings, path, "impression")):
            records.append(
                _record(
                    root,
                    path,
                    label,
                    tag,
                    "impression",
                    question,
                    impression,
                    task="report",
                    answer_type="open",
                    reasoning=_reasoning(label, impression),
                    id_suffix=f"-p{index}" if phrasings > 1 else "",
                    masks=masks,
                )
            )
        prompts = pick_distinct(QUESTION_GENERATION_PROMPTS, phrasings, path, "qg-prompt")
        for index, prompt in enumerate(prompts):
            records.append(
                _record(
                    root,
                    path,
                    label,
                    tag,
                    "question_generation",
                    prompt,
                    _generated_question(path, label, index),
                    task="question_generation",
                    answer_type="open",
                    id_suffix=f"-p{index}" if phrasings > 1 else "",
                    masks=masks,
                )
            )
    return records


def build_busi_vqa(
    busi_root: str | Path, split: str = "val", split_name: str = "busi", wordings: WordingSet = "train"
) -> list[Record]:
    """The BUSI-zh evaluation set: closed questions with gold answers from labels.csv.

    ``wordings="train"``: fixed phrasings (the first of each list) so scores compare across runs
    and models; ``"heldout"``: one wording per image and question, drawn by a stable hash from the
    held-out set training never sees (does the model read the question, or match keywords?).
    ``split="all"`` evaluates every labels.csv row (a user's own BUSI-layout folder).
    """
    root = Path(busi_root)
    records = []
    for path, label, tag, masks in _labelled_images(root, split, split_name):
        for kind, questions, answer in _closed_questions(label, wordings):
            question = questions[0] if wordings == "train" else pick(questions, path, kind)
            extra = {"wordings": wordings}
            record = _record(
                root, path, label, tag, kind, question, answer, task="closed_vqa", extra=extra, masks=masks
            )
            records.append(record)
    return records
