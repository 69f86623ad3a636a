"""The BUSI examples a newcomer meets, drawn at random from val (not hand-picked), and what the
model answers on them, right or wrong.

    ultra release examples --seed 0 [--copy-images] [--model DIR] [--out DIR]

The draw is seeded and stratified (``per_class`` images of each label, in the committed val
split's order shuffled by the seed), so anyone can check that the bundled images were not chosen
for the model's sake. ``README.md`` (a table) and ``examples.json`` (the draw and the answers,
for tests) are written into ``--out`` (default: ``ultra/examples/busi``); ``--copy-images``
replaces the bundled images with the draw; ``--project-readme README.md`` also refreshes the
answers table between the project README's ``examples`` markers (what a newcomer reads first).
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from data_zh.builders.busi import LESION_QUESTIONS, MALIGNANCY_QUESTIONS, lesion_answer, malignancy_answer

LABELS = ("benign", "malignant", "normal")
QUESTIONS = (("lesion", LESION_QUESTIONS[0]), ("malignancy", MALIGNANCY_QUESTIONS[0]))


@dataclass(frozen=True)
class DrawnExample:
    """One drawn BUSI image: its file name and its BUSI source (path and label)."""

    file: str
    source: str
    label: str


def draw_examples(
    seed: int, labels: dict[str, str], per_class: int = 2, split: str = "val"
) -> list[DrawnExample]:
    """``per_class`` images of each label from a BUSI ``split`` by a seeded shuffle; named
    ``<label>-<n>.png``."""
    from data_zh.splits import load_split

    keys = load_split("busi")[split]
    rng = random.Random(f"examples:{seed}")
    drawn = []
    for label in LABELS:
        pool = [key for key in keys if labels.get(key) == label]
        if len(pool) < per_class:
            raise ValueError(
                f"{split} has {len(pool)} {label} image(s) in labels.csv, fewer than {per_class}"
            )
        for index, key in enumerate(rng.sample(pool, per_class), start=1):
            drawn.append(DrawnExample(f"{label}-{index}.png", key, label))
    return drawn


def gold_answer(kind: str, label: str) -> str:
    """The answer labels.csv implies for one of :data:`QUESTIONS`."""
    return lesion_answer(label) if kind == "lesion" else malignancy_answer(label)


def answer_examples(model: Any, processor: Any, drawn: list[DrawnExample], busi_root: Path) -> list[dict]:
    """Greedy answers to the lesion and malignancy questions on each drawn image, with the gold
    answer and whether they agree (canonical labels, as ``ultra eval`` scores them)."""
    from ultra.answerer import Answerer, GenerationSettings, Request
    from ultra.eval.canonical import canonical_label
    from ultra.media import read_image

    settings = GenerationSettings(max_new_tokens=16)
    pairs = [(example, kind, question) for example in drawn for kind, question in QUESTIONS]
    requests = [
        Request(question, [read_image(busi_root / example.source)], settings=settings)
        for example, _, question in pairs
    ]
    answers = Answerer(model, processor).answer(requests, batch_size=4)
    rows = []
    for (example, kind, question), answer in zip(pairs, answers, strict=True):
        gold = gold_answer(kind, example.label)
        rows.append(
            {
                "file": example.file,
                "question": question,
                "answer": answer.text,
                "gold": gold,
                "correct": canonical_label(answer.text) == canonical_label(gold),
            }
        )
    return rows


README_MARKERS = ("<!-- examples:start -->", "<!-- examples:end -->")


def answers_table(rows: list[dict], folder: str = "") -> str:
    """Every answer, right or wrong, as a markdown table (``folder`` prefixes the file names)."""
    lines = ["| file | question | model answer | expected | |", "| --- | --- | --- | --- | --- |"]
    lines += [
        f"| `{folder}{row['file']}` | {row['question']} | {row['answer']} | {row['gold']} | "
        f"{'right' if row['correct'] else 'wrong'} |"
        for row in rows
    ]
    return "\n".join(lines)


def refresh_readme_block(readme: Path, rows: list[dict], seed: int) -> None:
    """Replace the table between the project README's markers (both must be there)."""
    text = readme.read_text(encoding="utf-8")
    start, end = README_MARKERS
    if text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f"{readme}: needs exactly one {start} and one {end} line")
    right = sum(row["correct"] for row in rows)
    block = (
        f"{start}\n`ultra-tiny-zh` on the six bundled BUSI val images (drawn by `ultra release examples "
        f"--seed {seed}`, not picked), right or wrong ({right} of {len(rows)} right):\n\n"
        f"{answers_table(rows, 'ultra/examples/busi/')}\n{end}"
    )
    head, rest = text.split(start, 1)
    readme.write_text(head + block + rest.split(end, 1)[1], encoding="utf-8")


def examples_markdown(seed: int, drawn: list[DrawnExample], rows: list[dict], model_name: str) -> str:
    """The README: how the images were drawn, then every answer, right or wrong."""
    sources = "\n".join(f"| `{e.file}` | BUSI `{e.source}` | {e.label} |" for e in drawn)
    answers = answers_table(rows)
    right = sum(row["correct"] for row in rows)
    return f"""# BUSI examples

Drawn by `ultra release examples --seed {seed}`: {len(drawn) // len(LABELS)} images of each
label from the committed BUSI **val** split (never trained on), chosen by a seeded shuffle, not
by hand. Answers are {model_name}'s greedy answers, right or wrong ({right} of {len(rows)} right).
仅供研究，非临床诊断 (research use only, not a clinical diagnosis).

| file | source | label |
| --- | --- | --- |
{sources}

{answers}
"""


def write_examples(
    model_dir: Path | None,
    busi_root: Path,
    seed: int,
    out: Path,
    copy_images: bool = False,
    per_class: int = 2,
    project_readme: Path | None = None,
) -> dict[str, Path]:
    """Draw, answer, and write ``README.md`` and ``examples.json`` into ``out`` (and the images
    with ``copy_images``, the project README's table with ``project_readme``); returns the written paths."""
    from data_zh.converters.busi import read_busi_labels
    from ultra.model import load_model
    from ultra.resources import embedded_model_dir

    labels = {key: row["label"] for key, row in read_busi_labels(busi_root).items()}
    drawn = draw_examples(seed, labels, per_class)
    model, processor = load_model(model_dir or embedded_model_dir())
    rows = answer_examples(model, processor, drawn, busi_root)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    if copy_images:
        for example in drawn:
            shutil.copyfile(busi_root / example.source, out / example.file)
            written[example.file] = out / example.file
    name = Path(model_dir).name if model_dir else "ultra-tiny-zh"
    readme = out / "README.md"
    readme.write_text(examples_markdown(seed, drawn, rows, name), encoding="utf-8")
    payload = {"seed": seed, "model": name, "drawn": [asdict(e) for e in drawn], "answers": rows}
    record = out / "examples.json"
    record.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    if project_readme is not None:
        refresh_readme_block(project_readme, rows, seed)
        written["project_readme"] = project_readme
    return {"readme": readme, "examples": record, **written}
