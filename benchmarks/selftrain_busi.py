"""Self-training on BUSI: ultra-tiny-zh before and after one round (label judge, the
``selftrain_pool`` images never seen in training), beside a supervised control on the same labels.

The control fine-tunes the same LoRA for the same steps at the same rate on the same training
pairs' chosen answers (next-token loss): a label judge is supervision, so the comparison shows what
DPO's rejected answers add. Scores: balanced accuracy on the BUSI val closed questions
(``build_busi_vqa``), 95% percentile-bootstrap intervals (1000 resamples, seed 0) from
``ultra.eval``'s scorer. Settings are those of ``configs/selftrain-busi.yaml``, fixed before any val score was seen.
Resumable: rerunning continues the round and the control from their checkpoints.

    python -m benchmarks.selftrain_busi [--busi ../shared/data/busi] [--out runs/selftrain-busi]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from rich.console import Console

from data_zh.builders import build_busi_vqa
from data_zh.io import read_records, write_records
from ultra.eval.score import QUESTION_TYPE, score_answers
from ultra.model import load_model
from ultra.selftrain import (
    ImageSource,
    load_selftrain_config,
    preference_train_config,
    run_selftrain,
    sft_records,
)
from ultra.selftrain.run import model_folder
from ultra.train import Trainer
from ultra.train.validation import answer_records

CONFIG = Path("configs/selftrain-busi.yaml")
"""The round's settings, fixed a priori and never tuned on val (the file says why each)."""
QUESTION_TYPES = ("lesion", "malignancy")


def evaluate(model: str, records) -> dict:
    """Greedy answers to the val questions, scored per question type with bootstrap intervals."""
    loaded, processor = load_model(model)
    answers = answer_records(loaded, processor, records, batch_size=16, max_new_tokens=8)
    metrics = score_answers(answers, records, breakdowns=(QUESTION_TYPE,), group_resamples=1000)
    rows = {"overall": metrics["overall"], **metrics["by"][QUESTION_TYPE]}
    return {
        name: {
            "balanced_accuracy": row["closed_balanced_accuracy"],
            "ci95": row.get("closed_balanced_accuracy_ci95"),
            "n": row["n_closed"],
        }
        for name, row in rows.items()
    }


def cell(scores: dict, name: str) -> str:
    row = scores[name]
    low, high = row["ci95"] or (float("nan"), float("nan"))
    return f"{row['balanced_accuracy']:.1f} [{low:.1f}, {high:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busi", default="../shared/data/busi")
    parser.add_argument("--out", default="runs/selftrain-busi")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    config = load_selftrain_config(CONFIG)
    config = config.model_copy(
        update={
            "images": ImageSource(kind="busi", path=args.busi, split="selftrain_pool"),
            "rounds": 1,
            "output_dir": str(out / "selftrain"),
        }
    )
    started = time.perf_counter()
    (round_one,) = run_selftrain(config, resume=True, show_progress=False)
    selftrain_wall = time.perf_counter() - started

    train_pairs = read_records(out / "selftrain" / "round-1" / "pairs_train.jsonl")
    write_records(sft_records(train_pairs), out / "sft_train.jsonl")
    sft_config = preference_train_config(
        config.dpo,
        "tiny-zh",
        out / "sft_train.jsonl",
        None,
        out / "sft",
        objective="language_modeling",
        max_steps=round_one["dpo"]["steps"],
    )
    started = time.perf_counter()
    sft = Trainer(sft_config, show_progress=False).run(resume=True)
    sft_wall = time.perf_counter() - started

    val = build_busi_vqa(args.busi, "val")
    runs = {
        "ultra-tiny-zh (before)": (model_folder("tiny-zh"), "-", "-"),
        "+ 1 self-training round (DPO, label judge)": (
            round_one["model"],
            str(round_one["judge"]["pairs_train"]),
            f"{selftrain_wall:.0f} (round: {round_one['wall_s']:.0f})",
        ),
        "+ supervised control (same LoRA, steps, pairs' chosen answers)": (
            str(sft.final_dir),
            str(round_one["judge"]["pairs_train"]),
            f"{sft_wall:.0f}",
        ),
    }
    results = {}
    lines = [
        "| model | lesion bal. acc. % [95% CI] | malignancy bal. acc. % [95% CI] | all closed bal. acc. % "
        "[95% CI] | training pairs | wall s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, (model, pairs, wall) in runs.items():
        scores = evaluate(model, val)
        results[label] = {"model": model, "scores": scores}
        lines.append(
            f"| {label} | {cell(scores, 'lesion')} | {cell(scores, 'malignancy')} | {cell(scores, 'overall')} "
            f"| {pairs} | {wall} |"
        )
    table = "\n".join(lines)
    judged = round_one["judge"]
    notes = (
        f"\nround 1: {judged['questions']} questions on {round_one['generate']['images']} pool images -> "
        f"{judged['pairs']} pairs ({judged['pairs_train']} train, {judged['pairs_held_out']} held out), "
        f"dropped {judged['dropped']}; share of sampled answers the label judge accepts "
        f"{judged['mean_score']:.3f}; {round_one['dpo']['steps']} DPO steps, final held-out reward margin "
        f"{round_one['dpo']['held_out_reward_margin']}; template fallbacks "
        f"{round_one['generate']['template_fallbacks']}; curves: {round_one['dpo']['curves']}\n"
        f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}\n"
    )
    (out / "table.md").write_text(table + "\n" + notes, encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps(
            {"runs": results, "round": round_one, "selftrain_wall_s": selftrain_wall, "sft_wall_s": sft_wall},
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    console.print(table)
    console.print(notes)


if __name__ == "__main__":
    main()
