"""MODEL_CARD.md of the embedded ``ultra-tiny-zh``: what it is, what it learned from, how the
recipe was chosen (cross-validation inside train), its once-touched validation scores, what
changed from the model it replaced, and the files it ships with their SHA-256.

Every number comes from a run's own records (``summary.json``, the scorecard, ``cv.json``); the
renderer only lays them out, so a test can feed it hand-made facts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ultra.eval.intervals import mean_interval_text
from ultra.release.scorecard import interval_text, scorecard_markdown
from ultra.release.shippable import MAX_RELEASE_MB, sources_markdown

# The scores a released model must reach, read the same way for CV means and the once-scored val split.
TARGETS = (
    ("lesion_bacc", "lesion presence balanced accuracy", 80.0),
    ("malignancy_bacc", "malignancy balanced accuracy", 78.0),
    ("heldout_lesion_bacc", "held-out wordings: lesion balanced accuracy", 75.0),
    ("heldout_answer_type_consistency", "held-out wordings: answer-type consistency", 95.0),
)
HEADLINE_LABELS = {
    "lesion_bacc": "lesion presence balanced accuracy",
    "malignancy_bacc": "malignancy balanced accuracy",
    "answer_type_consistency": "answer-type consistency",
    "heldout_lesion_bacc": "held-out wordings: lesion balanced accuracy",
    "heldout_answer_type_consistency": "held-out wordings: answer-type consistency",
    "image_sensitivity": "image sensitivity (answers changed by blank images)",
}


@dataclass(frozen=True)
class ShippedFile:
    """A file of the release, as the card lists it."""

    name: str
    size_mb: float
    sha256: str

    @classmethod
    def of(cls, path: Path, name: str) -> ShippedFile:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return cls(name, path.stat().st_size / 2**20, digest)


@dataclass
class CardFacts:
    """What the card says, gathered by the release (or by a test)."""

    summary: dict[str, Any]
    card: dict[str, Any]
    command: str
    recipe: str = "configs/tiny-zh.yaml"
    heldout: dict[str, Any] = field(default_factory=dict)
    cv_table: str = ""
    cv_summary: dict[str, Any] = field(default_factory=dict)
    selection: str = ""
    fusion_weights: dict[str, float] | None = None
    previous: dict[str, float] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    student: dict[str, Any] = field(default_factory=dict)
    files: list[ShippedFile] = field(default_factory=list)
    torch_version: str = ""


def headline(card: dict[str, Any], heldout: dict[str, Any] | None = None) -> dict[str, float]:
    """The few numbers the targets and the previous-model comparison read, from a scorecard (and
    the held-out-wording scores): percent, missing ones left out."""
    types = card["model"]["by_question_type"]
    numbers: dict[str, float] = {}
    for name in ("lesion", "malignancy"):
        if "closed_balanced_accuracy" in types.get(name, {}):
            numbers[f"{name}_bacc"] = types[name]["closed_balanced_accuracy"]
    if "answer_type_consistency" in card["model"]["overall"]:
        numbers["answer_type_consistency"] = card["model"]["overall"]["answer_type_consistency"]
    if heldout:
        lesion = heldout["by_question_type"].get("lesion", {})
        if "closed_balanced_accuracy" in lesion:
            numbers["heldout_lesion_bacc"] = lesion["closed_balanced_accuracy"]
        if "answer_type_consistency" in heldout["overall"]:
            numbers["heldout_answer_type_consistency"] = heldout["overall"]["answer_type_consistency"]
    numbers["image_sensitivity"] = card["image_sensitivity"]["image_sensitivity"]
    return numbers


def _blind_gap(card: dict[str, Any], name: str) -> str:
    model, blind = (
        card[run]["by_question_type"].get(name, {}).get("closed_balanced_accuracy", float("nan"))
        for run in ("model", "blind")
    )
    return f"{model - blind:+.1f}"


def heldout_markdown(heldout: dict[str, Any]) -> str:
    """Held-out wordings on val: balanced accuracy with its interval and answer-type consistency."""
    lines = [
        "| question | n | balanced accuracy % [95% CI] | answer-type consistency % |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in sorted(heldout["by_question_type"].items()):
        if not row.get("n_closed"):
            continue
        consistency = row.get("answer_type_consistency")
        shown = f"{consistency:.1f}" if consistency is not None else "–"
        lines.append(
            f"| {name} | {row['n_closed']} | {interval_text(row, 'closed_balanced_accuracy')} | {shown} |"
        )
    return "\n".join(lines)


def targets_markdown(cv_summary: dict[str, Any], val: dict[str, float]) -> str:
    """Each target beside the CV mean (inside train) and the once-scored val figure."""
    lines = ["| target | CV mean % [95% CI] | val % (once) | met |", "| --- | --- | --- | --- |"]
    for key, label, threshold in TARGETS:
        row = cv_summary.get(key)
        cv = mean_interval_text(row) if row else "–"
        shown = f"{val[key]:.1f}" if key in val else "–"
        met = "yes" if row and row["mean"] >= threshold else "no" if row else "–"
        lines.append(f"| {label} ≥ {threshold:.0f} | {cv} | {shown} | {met} (CV mean) |")
    return "\n".join(lines)


def comparison_markdown(previous: dict[str, float], now: dict[str, float]) -> str:
    """The model this release replaced beside this one, scored the same way on the same val questions."""
    lines = ["| metric | previous model % | this model % |", "| --- | --- | --- |"]
    for key, label in HEADLINE_LABELS.items():
        if key in previous or key in now:
            before = f"{previous[key]:.1f}" if key in previous else "–"
            after = f"{now[key]:.1f}" if key in now else "–"
            lines.append(f"| {label} | {before} | {after} |")
    return "\n".join(lines)


def _fusion_line(weights: dict[str, float] | None) -> str:
    if not weights:
        return ""
    shares = ", ".join(f"{name} {value:.2f}" for name, value in weights.items())
    return f"\nLearned fusion weights (softmax, sum 1): {shares}.\n"


def _cv_section(facts: CardFacts) -> str:
    if not facts.cv_table:
        return ""
    targets = (
        targets_markdown(facts.cv_summary, headline(facts.card, facts.heldout)) if facts.cv_summary else ""
    )
    return (
        "\n## Recipe selection (cross-validation inside the train split)\n"
        "The recipe was chosen on these folds only (`ultra cv`); the val split below was "
        f"scored once, at the end.\n\n{facts.selection}{facts.cv_table}\n\n{targets}\n"
    )


def _heldout_section(heldout: dict[str, Any]) -> str:
    if not heldout:
        return ""
    return (
        "\nThe same val images asked in the **held-out wordings** (`ultra eval run --dataset "
        "busi_heldout`: 21 phrasings no training record used), one wording per image and question:\n\n"
        f"{heldout_markdown(heldout)}\n"
    )


def _changes_section(facts: CardFacts) -> str:
    if not facts.previous and not facts.changes:
        return ""
    changes = "\n".join(f"- {line}" for line in facts.changes)
    table = comparison_markdown(facts.previous, headline(facts.card, facts.heldout)) if facts.previous else ""
    return f"\n## What changed from the previous model\n{changes}\n\n{table}\n"


def _student_section(student: dict[str, Any]) -> str:
    if not student:
        return ""
    return f"""
## The screening student (`ultra-tiny-zh-screener`)
Shipped beside the model (`ultra screen`, the demo's 报告筛选 tab): a small image head over this
model's own frozen fusion features and a hashed-word text encoder, distilled from this model's
answers (teacher) plus the report labels, on {student["reports"]} reports built from the BUSI and
DICOM **train** splits only (`ultra data build report_benchmark --split train`; no laparoscopy
frames), {student["wall_s"]:.0f} s. Recipe: `{student["recipe"]}`. It is pinned to these weights
by a fingerprint of the fusion backbone (another backbone is refused). Benchmark against a
labels-only student: `python -m benchmarks.screening`.
"""


def _files_section(files: list[ShippedFile]) -> str:
    if not files:
        return ""
    rows = "\n".join(f"| `{f.name}` | {f.size_mb:.1f} | `{f.sha256}` |" for f in files)
    total = sum(f.size_mb for f in files)
    return (
        "\n## Files (SHA-256)\nRetraining reproduces the metrics within the intervals above; the bytes "
        "may differ between CPUs.\n\n| file | MB | SHA-256 |\n| --- | --- | --- |\n"
        f"{rows}\n\nIn all: {total:.1f} MB.\n"
    )


def _intro_section(files: list[ShippedFile]) -> str:
    """What the model is, and what it is not."""
    weights = next((f for f in files if f.name.endswith("model.safetensors")), None)
    size = f"{weights.size_mb:.1f} MB" if weights else f"under {MAX_RELEASE_MB:.0f} MB"
    return f"""# ultra-tiny-zh — model card

**A small demonstration model trained on a few hundred public images.** It shows that the
whole pipeline works end to end on a laptop-class CPU and answers a handful of Chinese questions
about breast ultrasound images. It is **not** a clinical tool and not a competitive Med-VQA
model: 仅供研究，非临床诊断 (research use only, not a clinical diagnosis). For real work use the
`small-zh` / `base-zh` presets (CLIP ViT-L/14-336 + SAM ViT-B fused, Qwen2.5-0.5B/1.5B-Instruct)
trained on your own data with `configs/small-zh-lora.yaml` (alignment, then LoRA instruction
tuning; see the README's training section).

## What it is
- Preset `tiny-zh`: resnet10t and convnext_atto encoders at 128 px, both trained, each projected
  (mlp2x_gelu) to 4×4 = 16 tokens and fused with a learned softmax weight (LLaVA-Ultra's
  α·H1 + (1−α)·H2); a 4-layer Qwen2-shaped decoder (hidden 256, 8k byte-level BPE tokenizer
  trained offline on jieba's dictionary and SLAKE's Chinese text), ChatML prompts.
- Weights: `model.safetensors`, float16, {size}; the tokenizer files sit beside them.
  `ultra ask`, `ultra eval run` and `ultra dicom --question` use this folder when no `--model` is given.
- Everything was trained from scratch here; nothing was downloaded.
"""


def _data_section(summary: dict[str, Any]) -> str:
    """Every source the model learned from, with its licence (the export's gate already ran)."""
    return f"""
## Training data (only data that may ship)
Every source of the run's training records, from its `summary.json` (the export refuses
non-commercial licences): BUSI **train** split images with their labels as Chinese
instructions in the training wordings, question-type exchanges written for ultra (text only),
the pydicom sample files' modality questions, and SLAKE's Chinese train questions as text only.

{sources_markdown(summary.get("training_data", []))}

BUSI: Al-Dhabyani et al., *Data in Brief* 28 (2020) 104863 (CC BY 4.0). SLAKE 1.0: Liu et al.,
ISBI 2021 (CC BY 4.0). Not used, on purpose: the laparoscopy frames (Cholec80, CC BY-NC-SA) and
PromptCBLUE (non-commercial); the BUSI selftrain_pool and val splits (val is scored below).
"""


def _training_section(facts: CardFacts) -> str:
    """The command, the recipe and each stage's steps and wall time."""
    summary = facts.summary
    stages = "\n".join(
        f"| {row['stage']} | {row['steps']} | {row['samples']} | {row['wall_s']} | {row['samples_per_s']} |"
        for row in summary["stages"]
    )
    return f"""
## How it was trained
Command (from the repository root, `../shared/data` beside the checkout):

```bash
{facts.command}
```

Recipe (`{facts.recipe}`): stage 0 trains both encoders end to end like a classifier on the
BUSI train labels (3 classes, class-weighted cross-entropy, flips/crops/brightness/contrast
augmentation) through a temporary linear head on the mean fused token, together with both
projectors and the fusion weights. Stage 1 trains the whole LLM from scratch on all instruction
data (several training wordings per question, the question-type exchanges, DICOM modality
questions, SLAKE text) with the vision tower frozen (each image encoded once).

| stage | optimizer steps | samples | wall time (s) | samples/s |
| --- | --- | --- | --- | --- |
{stages}

Total wall time: {summary["wall_s"] / 60:.1f} min on 2 CPU cores (torch {facts.torch_version}, CPU
only). Loss curve: `loss_curve.png` (this folder).
"""


def _validation_section(card: dict[str, Any]) -> str:
    """The once-scored val split beside the majority and blind baselines."""
    types = card["model"]["by_question_type"]
    table = scorecard_markdown(card, [name for name in ("lesion", "malignancy", "site") if name in types])
    sensitivity = card["image_sensitivity"]["image_sensitivity"]
    return f"""
## Validation (BUSI val split, 60 images never seen in training, scored once)
Closed questions of `build_busi_vqa` (fixed phrasings), answers by greedy decoding, scored with
`ultra.eval`'s canonical labels. Balanced accuracy is the mean per-class recall (the classes are
unbalanced). 95% intervals: percentile bootstrap over questions (1000 resamples, seed 0).
Baselines scored the same way: the majority answer of each question type in the train split, and
the same model answering with `ultra.blank_like` images (zeros after normalisation). The
malignancy question is also asked about the normal images (expected: 未见明确病灶).

{table}

Balanced accuracy above the blind run: 是否可见病灶 (lesion) {_blind_gap(card, "lesion")} points, 良性/恶性
(malignancy) {_blind_gap(card, "malignancy")} points. Image sensitivity (share of answers that change with
blank images): {sensitivity:.1f}%. With 60 validation images the intervals are wide; read the
numbers as "the model uses the image", not as diagnostic performance.
"""


CLOSING = """
Reproduce: the command above trains the model and the screening student, scores the model on
the val split once and writes this card, the bundled examples' answers
(`ultra/examples/busi/README.md`) and `example_answers.json`.

## Limitations
- Trained on 132 breast ultrasound images: it knows breast ultrasound lesion classes, DICOM
  modality and a little SLAKE-style Chinese QA; anything else gets fluent but ungrounded text.
- Resolution is 128 px; the encoders are small and trained from scratch on very little data.
- Not validated on any clinical population. Never use it for a diagnosis.
"""


def render_model_card(facts: CardFacts) -> str:
    """MODEL_CARD.md from the release's facts, one section after another (empty ones left out)."""
    return "".join(
        [
            _intro_section(facts.files),
            _data_section(facts.summary),
            _training_section(facts),
            _fusion_line(facts.fusion_weights),
            _cv_section(facts),
            _validation_section(facts.card),
            _heldout_section(facts.heldout),
            _changes_section(facts),
            _student_section(facts.student),
            _files_section(facts.files),
            CLOSING,
        ]
    )
