"""One command for the embedded release: train ``ultra-tiny-zh``, score it on val once, train the
screening student from it, and ship both into the package with the card and the examples.

    ultra release --cv runs/cv-tiny-zh/cv.json

Steps, in order (each reuses the library call behind its own command):

1. score the model being replaced on the same val questions (the card's "what changed");
2. ``ultra train`` the recipe (``configs/tiny-zh.yaml``: stage 0 classifier on both encoders,
   stage 1 the LLM);
3. install it into ``<weights-dir>/ultra-tiny-zh`` (the licence gate refuses non-commercial data),
   score it on the BUSI val split once (scorecard + held-out wordings), answer the examples;
4. build the screening reports from the train splits (``ultra data build report_benchmark``);
5. ``ultra screen train`` the student with the installed model as teacher and backbone, and
   install it into ``<weights-dir>/ultra-tiny-zh-screener`` (licence gate again);
6. write MODEL_CARD.md with the CV table, val scores, SHA-256 of both weight files, and refuse a
   release over :data:`MAX_RELEASE_MB`.

``--max-steps N`` caps every stage (a smoke run: it needs a scratch ``--weights-dir``, where the
examples go too; only a release into the package refreshes the bundled examples and README.md).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ultra.release.model_card import CardFacts, ShippedFile, headline, render_model_card
from ultra.release.shippable import MAX_RELEASE_MB, check_shippable, read_training_data
from ultra.resources import PACKAGE_ROOT, examples_dir
from ultra.train.config import TrainConfig

if TYPE_CHECKING:
    from ultra.train.screening_student import StudentTrainingResult

logger = logging.getLogger(__name__)

MODEL_NAME = "ultra-tiny-zh"
STUDENT_NAME = "ultra-tiny-zh-screener"
SHIPPED_WEIGHTS = PACKAGE_ROOT / "weights"
RECIPE = "configs/tiny-zh.yaml"
SCREENING_RECIPE = "configs/screening-tiny-zh.yaml"
WHAT_CHANGED = [
    "Recipe chosen by 5-fold cross-validation inside the BUSI train split (near-duplicate groups "
    "kept whole) against a plain classifier in the same folds; val scored once, at the end. The "
    "previous recipe had been compared with four others on val itself.",
    "Both encoders trained in stage 0 (convnext_atto was left at random initialisation before).",
    "Many question wordings (three training phrasings per question and image, from 278), a "
    "held-out wording set never trained on, and text-only question-type exchanges.",
    "良性还是恶性 is also asked about normal images (expected: 未见明确病灶).",
    "Shipped together with its screening student, distilled from this model.",
]


class ReleaseError(ValueError):
    """The release cannot ship as built (too large, missing pieces)."""


@dataclass(frozen=True)
class ReleasePaths:
    """Where the release reads and writes."""

    weights_dir: Path
    examples_out: Path
    busi: Path
    dicom: Path
    project_readme: Path | None = None

    @property
    def model_dir(self) -> Path:
        return self.weights_dir / MODEL_NAME

    @property
    def student_dir(self) -> Path:
        return self.weights_dir / STUDENT_NAME


def release_paths(weights_dir: Path, busi: Path, dicom: Path) -> ReleasePaths:
    """Into the package: the bundled examples and the checkout's README are refreshed too; anywhere
    else (a smoke run, a trial): the examples go beside the weights and no README is touched."""
    if weights_dir.resolve() == SHIPPED_WEIGHTS.resolve():
        readme = PACKAGE_ROOT.parent / "README.md"
        return ReleasePaths(
            weights_dir, examples_dir() / "busi", busi, dicom, readme if readme.is_file() else None
        )
    return ReleasePaths(weights_dir, weights_dir / "examples" / "busi", busi, dicom)


def _step(message: str, started: float) -> None:
    """One progress line per step with the minutes so far (the whole release takes a while)."""
    elapsed = (time.perf_counter() - started) / 60
    print(f"[release {elapsed:4.1f} min] {message}", file=sys.stderr, flush=True)  # noqa: T201


def score_previous(paths: ReleasePaths) -> dict[str, float]:
    """Headline numbers of the model about to be replaced (empty when there is none)."""
    from ultra.model import load_model
    from ultra.release.embedded import evaluate, heldout_scores

    if not (paths.model_dir / "model.safetensors").is_file():
        return {}
    model, processor = load_model(paths.model_dir)
    return headline(evaluate(model, processor, paths.busi), heldout_scores(model, processor, paths.busi))


def screening_config(base: TrainConfig, model_dir: Path, reports: Path, output_dir: Path) -> TrainConfig:
    """The student recipe with the freshly installed model as teacher and the reports just built."""
    data = {name: source.model_copy(update={"path": str(reports)}) for name, source in base.data.items()}
    return base.model_copy(
        update={
            "model": base.model.model_copy(update={"name_or_path": str(model_dir)}),
            "data": data,
            "output_dir": str(output_dir),
        }
    )


def without_validation(config: TrainConfig) -> TrainConfig:
    """The recipe as the release trains it: val is scored once, after training, so the run itself
    validates on nothing (a recipe's own validation would look at val at every stage's end)."""
    return config.model_copy(update={"validation": config.validation.model_copy(update={"source": None})})


def install_student(student_dir: Path, run_dir: Path, destination: Path) -> Path:
    """Copy a trained student into the package after the licence gate on its training reports."""
    check_shippable(read_training_data(run_dir))
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(student_dir, destination)
    return destination


def shipped_files(paths: ReleasePaths) -> list[ShippedFile]:
    """The weight files with sizes and digests; refuses a release over the size budget."""
    files = [
        ShippedFile.of(paths.model_dir / "model.safetensors", f"{MODEL_NAME}/model.safetensors"),
        *(
            ShippedFile.of(path, f"{STUDENT_NAME}/{path.relative_to(paths.student_dir)}")
            for path in sorted(paths.student_dir.rglob("*.safetensors"))
        ),
    ]
    total = sum(f.size_mb for f in files)
    if total > MAX_RELEASE_MB:
        raise ReleaseError(
            f"the release's weights take {total:.1f} MB, over the {MAX_RELEASE_MB:.0f} MB budget"
        )
    return files


@dataclass(frozen=True)
class ValScores:
    """The installed model scored on val once, and what the card reads from it."""

    card: dict[str, Any]
    heldout: dict[str, Any]
    fusion_weights: dict[str, float] | None


def install_and_score(run_dir: Path, paths: ReleasePaths, examples_seed: int = 0) -> ValScores:
    """Install the trained model, score it on val once (``scorecard.json`` in the run folder), and
    answer the examples drawn from val and the bundled ones (``example_answers.json``)."""
    from ultra.model import load_model
    from ultra.release.embedded import evaluate, example_answers, heldout_scores, install
    from ultra.release.examples import write_examples

    install(run_dir, paths.model_dir)
    model, processor = load_model(paths.model_dir)
    card = evaluate(model, processor, paths.busi)
    heldout = heldout_scores(model, processor, paths.busi)
    (run_dir / "scorecard.json").write_text(
        json.dumps({"val": card, "val_heldout_wordings": heldout}, ensure_ascii=False, indent=1),
        encoding="utf-8",
    )
    write_examples(
        paths.model_dir,
        paths.busi,
        examples_seed,
        paths.examples_out,
        copy_images=True,
        project_readme=paths.project_readme,
    )
    # after the draw: into the package, it replaces the bundled images these answers are about
    (paths.model_dir / "example_answers.json").write_text(
        json.dumps(example_answers(model, processor), ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return ValScores(card, heldout, model.vision_tower.fusion_weights())


def train_student(
    screening: TrainConfig,
    paths: ReleasePaths,
    run_dir: Path,
    started: float,
    *,
    max_steps: int | None = None,
    show_progress: bool = True,
) -> tuple[StudentTrainingResult, int]:
    """Build the screening reports from the train splits, train the student with the installed
    model as teacher and backbone, and install it; returns the run and the number of reports."""
    from data_zh.builders import build_report_benchmark
    from ultra.train.screening_student import train_screening_student

    _step("building the screening reports from the train splits", started)
    reports = run_dir / "screening-reports"
    built = build_report_benchmark(paths.busi, reports, split="train", dicom_root=paths.dicom)
    _step(f"training the screening student on {len(built)} reports", started)
    student_config = screening_config(
        screening, paths.model_dir, reports / "benchmark.jsonl", run_dir / "screening"
    )
    student = train_screening_student(student_config, max_steps=max_steps, show_progress=show_progress)
    install_student(student.student_dir, Path(student_config.output_dir), paths.student_dir)
    return student, len(built)


def refuse_smoke_into_package(paths: ReleasePaths, max_steps: int | None) -> None:
    """A smoke run's weights are untrained: they may go anywhere but over the shipped model."""
    if max_steps is not None and paths.weights_dir.resolve() == SHIPPED_WEIGHTS.resolve():
        raise ReleaseError("a --max-steps smoke run would replace the shipped model: pass --weights-dir DIR")


def release(
    config: TrainConfig,
    screening: TrainConfig,
    paths: ReleasePaths,
    *,
    cv_report: dict[str, Any] | None = None,
    selection: str = "",
    command: str = f"ultra release --cv CV.json  # recipe {RECIPE}",
    examples_seed: int = 0,
    max_steps: int | None = None,
    show_progress: bool = True,
) -> CardFacts:
    """Run every step of the module docstring; return what the card says."""
    import torch

    from ultra.eval.intervals import cv_markdown
    from ultra.train.runner import Trainer

    refuse_smoke_into_package(paths, max_steps)
    started = time.perf_counter()
    run_dir = Path(config.output_dir)
    config = without_validation(config)
    _step("scoring the model being replaced on val (for the card's comparison)", started)
    previous = score_previous(paths)
    _step(f"training the model ({len(config.stages)} stages) into {run_dir}", started)
    result = Trainer(config, max_steps=max_steps, show_progress=show_progress).run()
    _step(f"installing into {paths.model_dir} and scoring val once", started)
    scores = install_and_score(run_dir, paths, examples_seed)
    student, n_reports = train_student(
        screening, paths, run_dir, started, max_steps=max_steps, show_progress=show_progress
    )
    facts = CardFacts(
        summary=json.loads((run_dir / "summary.json").read_text(encoding="utf-8")),
        card=scores.card,
        command=command,
        recipe=RECIPE,
        heldout=scores.heldout,
        cv_table=cv_markdown(cv_report["summary"], cv_report["k"], cv_report["seed"]) if cv_report else "",
        cv_summary=cv_report["summary"] if cv_report else {},
        selection=selection,
        fusion_weights=scores.fusion_weights,
        previous=previous,
        changes=WHAT_CHANGED if previous else [],
        student={"reports": n_reports, "wall_s": student.wall_s, "recipe": SCREENING_RECIPE},
        files=shipped_files(paths),
        torch_version=torch.__version__,
    )
    (paths.model_dir / "MODEL_CARD.md").write_text(render_model_card(facts), encoding="utf-8")
    _step(
        f"done (model training {result.wall_s / 60:.1f} min, student {student.wall_s / 60:.1f} min)", started
    )
    return facts


def selection_text(path: Path) -> str:
    """The selection document's body for the card (its own title line dropped)."""
    lines = path.read_text(encoding="utf-8").strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines).strip() + "\n\n"


def release_command(cv: Path | None = None, selection: Path | None = None) -> str:
    """The command line the card records: how this release was run."""
    return " ".join(
        ["ultra release"]
        + ([f"--cv {cv}"] if cv else [])
        + ([f"--selection {selection}"] if selection else [])
    )
