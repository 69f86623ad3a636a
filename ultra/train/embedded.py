"""Turn a finished ``configs/tiny-zh.yaml`` run into the embedded ``ultra-tiny-zh``: copy the
weights and tokenizer into the package, score it on the BUSI validation split against the
majority and blind baselines, record its answers on the bundled examples, write MODEL_CARD.md.

    python -m ultra.train.embedded runs/tiny-zh [--busi ../shared/data/busi]
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from ultra.resources import embedded_model_dir, examples_dir
from ultra.train.scorecard import scorecard, scorecard_markdown
from ultra.train.shippable import LicenceError, check_shippable, read_training_data, sources_markdown

logger = logging.getLogger(__name__)

MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
)
EXAMPLE_QUESTIONS = [
    ("busi/benign-1.png", "图像中是否可见病灶？"),
    ("busi/benign-1.png", "该病灶是良性还是恶性？"),
    ("busi/malignant-1.png", "图像中是否可见病灶？"),
    ("busi/malignant-1.png", "该病灶是良性还是恶性？"),
    ("busi/normal-1.png", "图像中是否可见病灶？"),
    ("busi/normal-2.png", "这张超声图像的检查部位是哪里？"),
    ("busi/malignant-2.png", "请用一句话给出这张乳腺超声图像的超声提示。"),
    ("dicom/us_rgb_color.dcm", "这张图像是什么成像方式？"),
]


def install(run_dir: Path, destination: Path) -> Path:
    """Copy the exported model (and the run's loss curve) into the package folder, after the
    licence gate: a run that trained on non-commercial data (or has no provenance) is refused
    before anything is copied."""
    import torch

    from ultra.model import UltraForConditionalGeneration

    check_shippable(read_training_data(run_dir))
    final = run_dir / "final"
    destination.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (final / name).is_file() and name != "model.safetensors":
            shutil.copy2(final / name, destination / name)
    # re-saved in float16 through save_pretrained, so tied embeddings are stored once
    model = UltraForConditionalGeneration.from_pretrained(final, dtype=torch.float16)
    model.save_pretrained(destination)
    shutil.copy2(run_dir / "loss_curve.png", destination / "loss_curve.png")
    return destination


def example_answers(model: Any, processor: Any) -> list[dict]:
    """The model's greedy answers on the bundled examples (the determinism test compares them)."""
    from ultra.answerer import Answerer, GenerationSettings, Request
    from ultra.media import read_image

    settings = GenerationSettings(max_new_tokens=16)
    requests = [
        Request(question, [read_image(examples_dir() / name)], settings=settings)
        for name, question in EXAMPLE_QUESTIONS
    ]
    answers = Answerer(model, processor).answer(requests, batch_size=4)
    return [
        {"images": [name], "question": question, "answer": answer.text}
        for (name, question), answer in zip(EXAMPLE_QUESTIONS, answers, strict=True)
    ]


def evaluate(model: Any, processor: Any, busi_root: Path) -> dict[str, Any]:
    """Scorecard on the BUSI-zh validation questions; majority answers from the train split."""
    from data_zh.builders import build_busi_instructions, build_busi_vqa

    records = build_busi_vqa(busi_root, "val")
    train = build_busi_instructions(busi_root, "train")
    return scorecard(model, processor, records, train, batch_size=16, max_new_tokens=8)


def render_model_card(
    summary: dict[str, Any],
    card: dict[str, Any],
    command: str,
    config_text: str,
    cv_table: str = "",
    fusion_weights: dict[str, float] | None = None,
) -> str:
    """MODEL_CARD.md: what the model is, its data and licences, how it was trained, its scores.
    ``cv_table``: ``ultra.train.cv``'s table (the recipe chosen inside train, before val was
    scored once); ``fusion_weights``: the learned per-encoder weights, reported as trained."""
    stages = "\n".join(
        f"| {row['stage']} | {row['steps']} | {row['samples']} | {row['wall_s']} | {row['samples_per_s']} |"
        for row in summary["stages"]
    )
    types = card["model"]["by_question_type"]
    table = scorecard_markdown(card, [name for name in ("lesion", "malignancy", "site") if name in types])

    def gap(name: str) -> str:
        model, blind = (
            card[run]["by_question_type"].get(name, {}).get("closed_balanced_accuracy", float("nan"))
            for run in ("model", "blind")
        )
        return f"{model - blind:+.1f}"

    sensitivity = card["image_sensitivity"]["image_sensitivity"]

    return f"""# ultra-tiny-zh — model card

**A small demonstration model trained on a few hundred public images.** It shows that the
whole pipeline works end to end on a laptop-class CPU and answers a handful of Chinese questions
about breast ultrasound images. It is **not** a clinical tool and not a competitive Med-VQA
model: 仅供研究，非临床诊断 (research use only, not a clinical diagnosis). For real work use the
`small-zh` / `base-zh` presets (CLIP ViT-L/14-336 + SAM ViT-B fused, Qwen2.5-0.5B/1.5B-Instruct)
trained on your own data with `configs/small-zh-lora.yaml` (alignment, then LoRA instruction
tuning; see the README's training section).

## What it is
- Preset `tiny-zh`: resnet10t and convnext_atto encoders at 128 px, each projected
  (mlp2x_gelu) to 4×4 = 16 tokens and fused with a learned softmax weight (LLaVA-Ultra's
  α·H1 + (1−α)·H2); a 4-layer Qwen2-shaped decoder (hidden 256, 8k byte-level BPE tokenizer
  trained offline on jieba's dictionary and SLAKE's Chinese text), ChatML prompts.
- Weights: `model.safetensors`, float16, {{size_mb}} MB; the tokenizer files sit beside them.
  `ultra ask`, `ultra eval run` and `ultra dicom --question` use this folder when no `--model` is given.
- Everything was trained from scratch here; nothing was downloaded.

## Training data (only data that may ship)
| source | what was used | licence |
| --- | --- | --- |
| BUSI (Al-Dhabyani et al., *Data in Brief* 28 (2020) 104863) | the 132 images of the committed **train** split (`data_zh/splits/busi.json`) with their benign/malignant/normal labels, turned into Chinese instructions by `data_zh.builders.build_busi_instructions` (检查部位, 是否可见病灶, 良性还是恶性, a one-sentence 超声提示, question generation) | CC BY 4.0 |
| pydicom / pydicom-data sample files | the DICOM **train** split (US, CT, MR): modality questions (超声 / CT / 磁共振, 是否为超声) from the Modality tag | MIT |
| SLAKE 1.0 (Liu et al., ISBI 2021) | 300 Chinese train-split questions and answers as **text only** (the images are not available here) | CC BY 4.0 |

Every source of the run's training records (from its `summary.json`; the export refuses
non-commercial licences):

{sources_markdown(summary.get("training_data", []))}

Not used, on purpose: the laparoscopy frames (Cholec80, CC BY-NC-SA) and PromptCBLUE
(non-commercial); the BUSI selftrain_pool and val splits (val is the evaluation set below).

## How it was trained
Command (from the repository root, `../shared/data` beside the checkout):

```bash
{command}
```

Recipe (`configs/tiny-zh.yaml`): stage 0a trains the resnet10t encoder end to end on the BUSI
train labels (3 classes, class-weighted cross-entropy, flips/crops/brightness/contrast
augmentation) through a temporary linear head on the mean fused token, together with both
projectors and the fusion weights; convnext_atto keeps its random initialisation (CPU budget) and
the fusion weights decide how much of it to use. Stage 0b trains the whole LLM from scratch on
all instruction data with the vision tower frozen (each image encoded once).

| stage | optimizer steps | samples | wall time (s) | samples/s |
| --- | --- | --- | --- | --- |
{stages}

Total wall time: {summary["wall_s"] / 60:.1f} min on 2 CPU cores shared with other jobs (torch
{{torch}}, CPU only). Loss curve: `loss_curve.png` (this folder).
{_fusion_line(fusion_weights)}{_cv_section(cv_table)}
## Validation (BUSI val split, 60 images never seen in training)
Closed questions of `build_busi_vqa` (fixed phrasings), answers by greedy decoding, scored with
`ultra.eval`'s canonical labels. Balanced accuracy is the mean per-class recall (the classes are
unbalanced). 95% intervals: percentile bootstrap over questions (1000 resamples, seed 0).
Baselines scored the same way: the majority answer of each question type in the train split, and
the same model answering with `ultra.blank_like` images (zeros after normalisation).

{table}

Balanced accuracy above the blind run: 是否可见病灶 (lesion) {gap("lesion")} points, 良性/恶性
(malignancy) {gap("malignancy")} points (target: at least +10 on both). Image sensitivity (share of
answers that change with blank images): {sensitivity:.1f}%. Other question types are
reported without a target. With 60 validation images the intervals are wide; read the numbers as
"the model uses the image", not as diagnostic performance.

Reproduce: train with the command above (it writes `runs/tiny-zh`, the config's `output_dir`), then
`python -m ultra.train.embedded runs/tiny-zh --busi ../shared/data/busi` copies the run's weights
here, scores them on the BUSI val split, and writes `example_answers.json` and this card.

## Limitations
- Trained on 132 breast ultrasound images: it knows breast ultrasound lesion classes, DICOM
  modality and a little SLAKE-style Chinese QA; anything else gets fluent but ungrounded text.
- One encoder was trained; the other is a random feature extractor. Resolution is 128 px.
- Not validated on any clinical population. Never use it for a diagnosis.
"""


def _fusion_line(weights: dict[str, float] | None) -> str:
    if not weights:
        return ""
    shares = ", ".join(f"{name} {value:.2f}" for name, value in weights.items())
    return f"\nLearned fusion weights (softmax, sum 1): {shares}.\n"


def _cv_section(cv_table: str) -> str:
    if not cv_table:
        return ""
    return (
        "\n## Recipe selection (cross-validation inside the train split)\n"
        "The recipe was chosen on these folds only (`python -m ultra.train.cv`); the val split below was "
        f"scored once, at the end.\n\n{cv_table}\n"
    )


def main(argv: list[str] | None = None) -> None:
    import argparse

    from ultra.logs import configure_logging
    from ultra.model import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--busi", type=Path, default=Path("../shared/data/busi"))
    parser.add_argument("--destination", type=Path, default=embedded_model_dir())
    parser.add_argument("--command", default=None, help="the exact training command, for the card")
    parser.add_argument(
        "--cv", type=Path, default=None, help="cv.json of python -m ultra.train.cv, for the card"
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        destination = install(args.run_dir, args.destination)
    except LicenceError as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201 - a command-line entry point
        raise SystemExit(2) from None
    model, processor = load_model(destination)
    card = evaluate(model, processor, args.busi)
    (args.run_dir / "scorecard.json").write_text(
        json.dumps(card, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    (destination / "example_answers.json").write_text(
        json.dumps(example_answers(model, processor), ensure_ascii=False, indent=1), encoding="utf-8"
    )
    summary = json.loads((args.run_dir / "summary.json").read_text(encoding="utf-8"))
    command = args.command or "ultra train configs/tiny-zh.yaml"
    cv_table = ""
    if args.cv is not None:
        from ultra.train.cv import cv_markdown

        report = json.loads(args.cv.read_text(encoding="utf-8"))
        cv_table = cv_markdown(report["summary"], report["k"], report["seed"])
    text = render_model_card(summary, card, command, "", cv_table, model.model.vision_tower.fusion_weights())
    import torch

    size = (destination / "model.safetensors").stat().st_size / 2**20
    text = text.replace("{size_mb}", f"{size:.1f}").replace("{torch}", torch.__version__)
    (destination / "MODEL_CARD.md").write_text(text, encoding="utf-8")
    print(scorecard_markdown(card), file=sys.stdout)  # noqa: T201 - a command-line entry point
    print(f"image sensitivity: {card['image_sensitivity']['image_sensitivity']:.1f}%")  # noqa: T201


if __name__ == "__main__":
    main()
