"""Both steps plus the checks that make a number trustworthy: generate, blind run, baselines, score.

``run_evaluation`` writes into one folder: ``answers.jsonl`` (images shown),
``answers_blind.jsonl`` (blank images), ``metrics.json`` / ``metrics.md`` / ``accuracy.png``, and
for closed questions with a candidate set ``choices.jsonl`` (``Answerer.choose``'s summed
log-likelihoods), their AUC / sensitivity / specificity / ECE under ``probabilities`` in
``metrics.json``, ``reliability.png``, and ``temperature.json`` (fitted on this split, for use on
another; see :mod:`ultra.eval.calibration`).
The blind run's accuracy and the share of answers that changed without the image ("image
sensitivity") say whether the model looks at the image at all; the majority answer per
question type from the train split says what the answer prior alone scores.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ultra.answerer import Answerer
from ultra.eval.answers import read_answers
from ultra.eval.baselines import fit_majority_baseline
from ultra.eval.calibration import choose_answers, fit_temperature_on, probability_metrics, write_choices
from ultra.eval.generate import generate_answers_file
from ultra.eval.report import write_report
from ultra.eval.score import Compat, image_sensitivity, score_answers
from ultra.eval.tokenize import TokenMode
from ultra.media import DEFAULT_LIMITS, MediaLimits

log = logging.getLogger(__name__)


def score_with_baselines(
    answers: list[dict],
    records: Sequence[Any],
    blind_answers: list[dict] | None = None,
    train_records: Sequence[Any] | None = None,
    token_mode: TokenMode = "char",
    compat: Compat = None,
) -> dict[str, Any]:
    """Metrics of ``answers`` with the blind run and the majority baseline under ``baselines``."""
    metrics = score_answers(answers, records, token_mode=token_mode, compat=compat)
    baselines: dict[str, Any] = {}
    if blind_answers is not None:
        baselines["blind (blank images)"] = score_answers(blind_answers, records, token_mode, n_resamples=0)[
            "overall"
        ]
        metrics["image_sensitivity"] = image_sensitivity(answers, blind_answers)
    if train_records:
        majority = fit_majority_baseline(train_records).answers(records)
        baselines["majority per question type"] = score_answers(majority, records, token_mode, n_resamples=0)[
            "overall"
        ]
    metrics["baselines"] = baselines
    return metrics


def run_evaluation(
    answerer: Answerer,
    records: Sequence[Any],
    out_dir: str | Path,
    image_root: str | Path | None = None,
    train_records: Sequence[Any] | None = None,
    blind: bool = True,
    blind_only: bool = False,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    strict: bool = False,
    token_mode: TokenMode = "char",
    compat: Compat = None,
    title: str = "",
    limits: MediaLimits = DEFAULT_LIMITS,
    allow_outside_root: bool = False,
    choose: bool = True,
    temperature: float = 1.0,
    temperature_source: str = "none (T = 1)",
) -> dict[str, Any]:
    """Generate (resumably), run the blind check, score everything and write the report.

    ``blind_only`` is for sets without images here (SLAKE, VQA-RAD): only the blank-image run
    is made and scored as the main result. With ``choose``, closed questions with a candidate set
    are also scored by ``Answerer.choose`` at ``temperature`` (fitted elsewhere: ``temperature_source``
    says where), with the images shown (blank ones for ``blind_only``).
    """
    out_dir = Path(out_dir)
    common = {
        "image_root": image_root,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "limits": limits,
        "allow_outside_root": allow_outside_root,
    }
    blind_path = out_dir / "answers_blind.jsonl"
    missing: list[tuple[str, str]] = []
    if blind or blind_only:
        generate_answers_file(answerer, records, blind_path, blank_images=True, **common)
    if blind_only:
        metrics = score_with_baselines(
            read_answers(blind_path), records, None, train_records, token_mode, compat
        )
        metrics["run"] = "blind only (blank images)"
    else:
        seen_path = out_dir / "answers.jsonl"
        report = generate_answers_file(answerer, records, seen_path, strict=strict, **common)
        missing = report.missing_media
        blind_answers = read_answers(blind_path) if blind else None
        metrics = score_with_baselines(
            read_answers(seen_path), records, blind_answers, train_records, token_mode, compat
        )
        metrics["run"] = "images shown"
    metrics["missing_media"] = [{"id": key, "path": path} for key, path in missing]
    if choose:
        rows = choose_answers(
            answerer,
            records,
            image_root,
            blank_images=blind_only,
            limits=limits,
            allow_outside_root=allow_outside_root,
        )
        if any(row["gold"] is not None for row in rows):
            write_choices(rows, out_dir / "choices.jsonl")
            metrics["probabilities"] = {
                **probability_metrics(rows, temperature),
                "temperature_source": temperature_source,
            }
            fitted = fit_temperature_on(rows)
            (out_dir / "temperature.json").write_text(
                json.dumps({**fitted, "fitted_on": title or str(out_dir)}, ensure_ascii=False, indent=2),
                encoding="utf-8",
            )
    write_report(metrics, out_dir, title)
    return metrics
