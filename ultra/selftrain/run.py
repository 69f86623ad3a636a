"""The self-training loop: generate -> judge -> DPO for N rounds, each round from the last policy.

Every step writes its output into ``output_dir/round-N/`` and a resumed run continues where the
killed one stopped: generation by image, the judge's pairs when they were written, DPO from its
last checkpoint (``ultra train``'s exact resume). Each round's scores go to ``rounds.jsonl``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_zh.io import json_line, read_jsonl, read_records, write_records
from data_zh.schema import Record
from ultra.selftrain.config import DPOSettings, SelftrainConfig
from ultra.selftrain.generate import GenerateReport, generate_candidates, read_candidates
from ultra.selftrain.judges import create_judge
from ultra.selftrain.pairs import judge_candidates, split_held_out
from ultra.selftrain.sources import image_records
from ultra.train.config import DataSource, ModelSource, StageConfig, TrainConfig, ValidationConfig
from ultra.train.curves import plot_loss_curve

logger = logging.getLogger(__name__)

ROUNDS_FILE = "rounds.jsonl"


class NoPairsError(RuntimeError):
    """The judge separated no answers, so there is nothing to train on (the message gives the counts)."""


def model_folder(name: str) -> str:
    """A loadable folder for ``ultra train``: the embedded model for ``tiny-zh``, else the name."""
    from ultra.answerer import DEFAULT_MODEL
    from ultra.resources import embedded_model_dir

    return str(embedded_model_dir()) if name == DEFAULT_MODEL else name


def preference_train_config(
    settings: DPOSettings,
    policy: str,
    train_path: str | Path,
    held_out_path: str | Path | None,
    output_dir: str | Path,
    *,
    seed: int = 0,
    objective: str = "dpo",
    max_steps: int | None = None,
) -> TrainConfig:
    """One LoRA stage on ``train_path``: ``dpo`` on preference records, or ``language_modeling``
    (the supervised control on the chosen answers) with the same LoRA, steps and rate."""
    validation = ValidationConfig()
    if held_out_path is not None and objective == "dpo":
        validation = ValidationConfig(
            source=DataSource(kind="records", path=str(held_out_path)),
            every_steps=settings.validate_every_steps,
        )
    stage = StageConfig(
        name=objective,
        objective=objective,
        objective_options={"beta": settings.beta} if objective == "dpo" else {},
        train=settings.train,
        lora=settings.lora,
        max_steps=max_steps or settings.max_steps,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        warmup_ratio=settings.warmup_ratio,
    )
    return TrainConfig(
        model=ModelSource(name_or_path=model_folder(policy)),
        data={"pairs": DataSource(kind="records", path=str(train_path))},
        stages=[stage],
        validation=validation,
        output_dir=str(output_dir),
        seed=seed,
        save_every_steps=settings.save_every_steps,
    )


@dataclass
class DPOResult:
    """A finished preference stage: the trained folder, its curves and the held-out scores."""

    final_dir: Path
    curves: Path
    wall_s: float
    steps: int
    validation: list[dict]


def run_dpo(
    config: TrainConfig,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    max_steps: int | None = None,
    show_progress: bool = True,
) -> DPOResult:
    """Train ``config`` with ``ultra train``'s ``Trainer`` (checkpoints, exact ``resume``) and draw
    the loss and held-out reward-margin curves (``dpo_curves.png``)."""
    from ultra.train import Trainer
    from ultra.train.checkpoint import latest_checkpoint, read_state

    trainer = Trainer(config, max_steps=max_steps, show_progress=show_progress, stop_after=stop_after)
    result = trainer.run(resume=resume)
    last = latest_checkpoint(result.output_dir)
    history = read_state(last).history if last is not None else []
    curves = plot_loss_curve(history, result.output_dir / "dpo_curves.png", result.validation)
    steps = sum(int(row["steps"]) for row in result.stages)
    return DPOResult(result.final_dir, curves, result.wall_s, steps, result.validation)


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")


def judge_round(config: SelftrainConfig, round_dir: Path, resume: bool, show_progress: bool) -> dict:
    """Pairs of a round's candidates (reused on resume once written), split by image into train
    and held-out; returns the judge's counts."""
    summary_path = round_dir / "judge.json"
    if resume and summary_path.exists():
        return json.loads(summary_path.read_text(encoding="utf-8"))
    judge = create_judge(config.judge, config.allow_remote_images)
    pairs, counts = judge_candidates(read_candidates(round_dir / "candidates.jsonl"), judge, show_progress)
    train, held_out = split_held_out(pairs, config.dpo.held_out_fraction, config.seed)
    write_records(pairs, round_dir / "pairs.jsonl")
    write_records(train, round_dir / "pairs_train.jsonl")
    write_records(held_out, round_dir / "pairs_held_out.jsonl")
    summary = counts.as_dict() | {
        "judge": judge.name,
        "pairs_train": len(train),
        "pairs_held_out": len(held_out),
    }
    _write_json(summary_path, summary)
    return summary


def round_dir(config: SelftrainConfig, index: int) -> Path:
    """Where round ``index`` keeps its candidates, pairs and DPO run."""
    return Path(config.output_dir) / f"round-{index}"


def generate_round(
    config: SelftrainConfig, index: int, policy: str, show_progress: bool = True
) -> GenerateReport:
    """The policy's questions and K answers per image (continues an interrupted file)."""
    from ultra.answerer import Answerer

    folder = round_dir(config, index)
    folder.mkdir(parents=True, exist_ok=True)
    return generate_candidates(
        Answerer.load(policy),
        image_records(config.images),
        folder / "candidates.jsonl",
        config.generate,
        seed=config.seed + 1000 * index,
        show_progress=show_progress,
    )


def dpo_round(
    config: SelftrainConfig,
    index: int,
    policy: str,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    show_progress: bool = True,
) -> DPOResult:
    """DPO on the round's training pairs, validated on its held-out pairs."""
    folder = round_dir(config, index)
    train_path, held_out_path = folder / "pairs_train.jsonl", folder / "pairs_held_out.jsonl"
    if not train_path.exists() or not read_pairs(train_path):
        raise NoPairsError(f"{train_path}: no training pairs; run `ultra selftrain judge` first")
    held_out = held_out_path if held_out_path.exists() and read_pairs(held_out_path) else None
    train_config = preference_train_config(
        config.dpo, policy, train_path, held_out, folder / "dpo", seed=config.seed
    )
    return run_dpo(train_config, resume=resume, stop_after=stop_after, show_progress=show_progress)


def run_round(
    config: SelftrainConfig, index: int, policy: str, *, resume: bool = False, show_progress: bool = True
) -> dict:
    """One round: the policy asks and answers, the judge pairs, DPO trains the next policy."""
    started = time.perf_counter()
    report = generate_round(config, index, policy, show_progress)
    judged = judge_round(config, round_dir(config, index), resume, show_progress)
    if not judged["pairs_train"]:
        raise NoPairsError(f"round {index}: no training pairs (judge counts: {judged})")
    dpo = dpo_round(config, index, policy, resume=resume, show_progress=show_progress)
    margins = [row["reward_margin"] for row in dpo.validation if "reward_margin" in row]
    return {
        "round": index,
        "policy": policy,
        "generate": {
            "images": report.images,
            "resumed_images": report.resumed_images,
            "new_items": report.items,
            "template_fallbacks": report.template_fallbacks,
            "failed_images": len(report.failed_images),
        },
        "judge": judged,
        "dpo": {
            "steps": dpo.steps,
            "held_out_reward_margin": margins[-1] if margins else None,
            "curves": str(dpo.curves),
        },
        "model": str(dpo.final_dir),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def finished_rounds(output_dir: str | Path) -> list[dict]:
    path = Path(output_dir) / ROUNDS_FILE
    if not path.exists():
        return []
    return [row for _, row in read_jsonl(path)]


def run_selftrain(config: SelftrainConfig, *, resume: bool = False, show_progress: bool = True) -> list[dict]:
    """All rounds (a resumed run skips the finished ones); returns each round's summary."""
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    _write_json(output / "config.json", config.model_dump(mode="json"))
    rounds = finished_rounds(output) if resume else []
    if not resume and (output / ROUNDS_FILE).exists():
        (output / ROUNDS_FILE).unlink()
    policy = rounds[-1]["model"] if rounds else config.model
    for index in range(len(rounds) + 1, config.rounds + 1):
        summary = run_round(config, index, policy, resume=resume, show_progress=show_progress)
        logger.info(
            "round %d: %d pairs (dropped %s), mean judge score %s, held-out reward margin %s",
            index,
            summary["judge"]["pairs"],
            summary["judge"]["dropped"],
            summary["judge"]["mean_score"],
            summary["dpo"]["held_out_reward_margin"],
        )
        with (output / ROUNDS_FILE).open("a", encoding="utf-8") as sink:
            sink.write(json_line(summary))
        rounds.append(summary)
        policy = summary["model"]
    return rounds


def read_pairs(path: str | Path) -> list[Record]:
    """Preference records of a pairs file (those without a pair are left out)."""
    return [record for record in read_records(path) if record.preference is not None]
