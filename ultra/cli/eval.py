"""``ultra eval``: generate answers, score them, or both (thin layer over ``ultra.eval``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from ultra.cli.media_options import ALLOW_OUTSIDE_ROOT_HELP, MAX_PIXELS_HELP, media_limits
from ultra.resources import DEFAULT_MODEL

eval_app = typer.Typer(
    help="Med-VQA evaluation: generate an answers file, score it, or run both with the blind check.",
    no_args_is_help=True,
)
console = Console()

DATASET_HELP = (
    "slake, vqa_rad, busi, busi_heldout (held-out wordings), any source `ultra data sources` lists, "
    "or a .jsonl of records (unified or LLaVA)"
)


def _records(dataset: str, root: Path | None, split: str):
    from ultra.eval.datasets import load_eval_records

    try:
        return load_eval_records(dataset, root, split)
    except (ValueError, FileNotFoundError) as error:
        raise typer.BadParameter(str(error)) from None


def _check_modes(token_mode: str, compat: str | None) -> None:
    if token_mode not in ("char", "jieba"):
        raise typer.BadParameter(f"{token_mode!r}: use char or jieba", param_hint="--tokens")
    from ultra.eval.llava_med import LLAVA_MED_RULES

    if compat not in (None, *LLAVA_MED_RULES):
        raise typer.BadParameter(f"{compat!r}: use {' or '.join(LLAVA_MED_RULES)}", param_hint="--compat")


def _load_answerer(model: str, adapter: str | None, device: str, allow_untrained: bool):
    """The front door for ``model``; refuses one whose image projectors never trained unless allowed.

    ``--device auto`` takes this process's device under ``accelerate launch`` (CPU otherwise).
    """
    from ultra.answerer import Answerer, UntrainedModelError

    if device == "auto":
        from ultra.eval.generate import process_state

        device = str(process_state().device)
    try:
        return Answerer.load(model, adapter=adapter, device=device, allow_untrained=allow_untrained)
    except (FileNotFoundError, OSError, UntrainedModelError) as error:
        raise typer.BadParameter(str(error), param_hint="--model") from None


def _temperature(value: float | None, path: Path | None) -> tuple[float, str]:
    """The softmax temperature and where it came from (never fitted on the reported split)."""
    if value is not None and path is not None:
        raise typer.BadParameter("give --temperature or --temperature-file, not both", param_hint="--temperature")
    if path is not None:
        from ultra.eval.calibration import read_temperature

        try:
            return read_temperature(path), str(path)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--temperature-file") from None
    if value is None:
        return 1.0, "none (T = 1)"
    if value <= 0:
        raise typer.BadParameter("must be greater than 0", param_hint="--temperature")
    return value, "--temperature"


@eval_app.command("score")
def score(
    answers: Path = typer.Argument(..., help="answers JSONL (id + answer per line)"),
    dataset: str = typer.Option(..., "--dataset", "-d", help=DATASET_HELP),
    root: Path | None = typer.Option(None, "--root", help="folder with the dataset's files"),
    split: str = typer.Option("test", "--split"),
    out: Path = typer.Option(Path("eval_out"), "--out", "-o", help="folder for metrics.json/.md/.png"),
    compat: str | None = typer.Option(
        None,
        "--compat",
        help="also score as 'llava-med' (v1.0.0 run_eval.py) or 'llava-med-2023-08' (its first release)",
    ),
    token_mode: str = typer.Option("char", "--tokens", help="Chinese open-answer tokens: char or jieba"),
    train_split: str | None = typer.Option(
        None, "--train-split", help="add the majority baseline from this split"
    ),
    title: str = typer.Option("", "--title"),
) -> None:
    """Score an answers file against a dataset (no model needed).

    An id answered twice is an error; answer ids that match no question are counted, warned about
    and left out.
    """
    from ultra.eval.answers import read_answers
    from ultra.eval.score import answers_by_id

    _check_modes(token_mode, compat)
    predictions = read_answers(answers)  # a bad file ends as one "error:" line (ultra.cli.errors)
    try:
        answers_by_id(predictions)
    except ValueError as error:
        raise ValueError(f"{answers}: {error}") from None
    from ultra.eval.report import print_report, write_report
    from ultra.eval.run import score_with_baselines  # brings torch: only once the answers are sound

    records = _records(dataset, root, split)
    train = _records(dataset, root, train_split) if train_split else None
    metrics = score_with_baselines(predictions, records, None, train, token_mode, compat)
    paths = write_report(metrics, out, title or f"{dataset} {split}")
    print_report(metrics, console, title or f"{dataset} {split}")
    console.print(f"written: {', '.join(str(p) for p in paths.values())}")


@eval_app.command("baseline")
def baseline(
    dataset: str = typer.Option(..., "--dataset", "-d", help=DATASET_HELP),
    root: Path | None = typer.Option(None, "--root"),
    split: str = typer.Option("test", "--split"),
    train_split: str = typer.Option("train", "--train-split"),
    out: Path = typer.Option(Path("eval_out/majority"), "--out", "-o"),
) -> None:
    """Majority answer per question type (from the train split), scored like a model."""
    from ultra.eval.answers import write_answers
    from ultra.eval.baselines import fit_majority_baseline
    from ultra.eval.report import print_report, write_report
    from ultra.eval.score import score_answers

    records = _records(dataset, root, split)
    answers = fit_majority_baseline(_records(dataset, root, train_split)).answers(records)
    out.mkdir(parents=True, exist_ok=True)
    write_answers(answers, out / "answers.jsonl")
    metrics = score_answers(answers, records)
    write_report(metrics, out, f"{dataset} {split}: majority baseline")
    print_report(metrics, console, f"{dataset} {split}: majority baseline")


@eval_app.command("generate")
def generate(
    model: str = typer.Option(
        DEFAULT_MODEL, "--model", "-m", help="model folder or preset (tiny-zh = embedded)"
    ),
    adapter: str | None = typer.Option(None, "--adapter", help="LoRA adapter folder"),
    dataset: str = typer.Option(..., "--dataset", "-d", help=DATASET_HELP),
    root: Path | None = typer.Option(None, "--root"),
    split: str = typer.Option("test", "--split"),
    image_root: Path | None = typer.Option(None, "--image-root", help="override the records' image folder"),
    out: Path = typer.Option(Path("eval_out/answers.jsonl"), "--out", "-o", help="answers JSONL (resumed)"),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1),
    blank_images: bool = typer.Option(False, "--blank-images", help="the blind-image check"),
    strict: bool = typer.Option(False, "--strict", help="fail when any record's media is missing"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="answer at most this many new questions"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, or auto (accelerate launch)"),
    allow_untrained: bool = typer.Option(
        False, "--allow-untrained", help="run a random-projector model anyway"
    ),
    max_pixels: int | None = typer.Option(None, "--max-pixels", min=1, help=MAX_PIXELS_HELP),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help=ALLOW_OUTSIDE_ROOT_HELP),
) -> None:
    """Answer a dataset's questions into a JSONL; rerunning skips ids already answered.

    Under ``accelerate launch`` the records are shared out between the processes, each writing a
    part file that the main process joins into OUT at the end (resumable as well):
    ``accelerate launch --multi_gpu --num_processes N -m ultra eval generate … --device auto``
    (``--multi_gpu`` also on CPU-only machines: ``--cpu`` alone starts a single process).
    """
    from ultra.eval.generate import MissingMediaError, Shard, generate_answers_file, join_parts

    records = _records(dataset, root, split)
    answerer = _load_answerer(model, adapter, device, allow_untrained)
    shard = Shard.from_accelerate()
    try:
        report = generate_answers_file(
            answerer,
            records,
            out,
            image_root=image_root,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            blank_images=blank_images,
            strict=strict,
            limit=limit,
            shard=shard,
            limits=media_limits(max_pixels),
            allow_outside_root=allow_outside_root,
        )
    except MissingMediaError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(code=2) from None
    if shard.count > 1:
        from ultra.eval.generate import process_state

        state = process_state()
        state.wait_for_everyone()
        if not state.is_main_process:
            return
        report.answered = join_parts(out) - report.in_part_files
    console.print(
        f"{out}: {report.answered} answered now, {report.already_answered} already there, "
        f"{len(report.missing_media)} with missing media"
    )
    for key, path in report.missing_media[:10]:
        console.print(f"  [yellow]missing[/yellow] {key}: {path}")


def _baseline_records(dataset: str, root: Path | None, train_split: str | None) -> list | None:
    """The records of the majority baseline's split; none (said in one line) when the set has no such split."""
    if not train_split:
        return None
    try:
        return _records(dataset, root, train_split)
    except typer.BadParameter as error:
        console.print(f"[yellow]no majority baseline: {error}[/yellow]")
        return None


@eval_app.command("run")
def run(
    model: str = typer.Option(
        DEFAULT_MODEL, "--model", "-m", help="model folder or preset (tiny-zh = embedded)"
    ),
    adapter: str | None = typer.Option(None, "--adapter"),
    dataset: str = typer.Option(..., "--dataset", "-d", help=DATASET_HELP),
    root: Path | None = typer.Option(None, "--root"),
    split: str = typer.Option("test", "--split"),
    train_split: str | None = typer.Option(
        "train", "--train-split", help="majority baseline source ('' for none)"
    ),
    image_root: Path | None = typer.Option(None, "--image-root"),
    out: Path = typer.Option(Path("eval_out"), "--out", "-o"),
    blind: bool = typer.Option(True, "--blind/--no-blind", help="also answer with blank images"),
    blind_only: bool = typer.Option(False, "--blind-only", help="sets without images here (SLAKE, VQA-RAD)"),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1),
    strict: bool = typer.Option(False, "--strict"),
    compat: str | None = typer.Option(None, "--compat"),
    token_mode: str = typer.Option("char", "--tokens"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, or auto (accelerate launch)"),
    allow_untrained: bool = typer.Option(
        False, "--allow-untrained", help="run a random-projector model anyway"
    ),
    max_pixels: int | None = typer.Option(None, "--max-pixels", min=1, help=MAX_PIXELS_HELP),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help=ALLOW_OUTSIDE_ROOT_HELP),
    choose: bool = typer.Option(
        True, "--choose/--no-choose", help="score closed questions with a candidate set by their probabilities"
    ),
    temperature: float | None = typer.Option(
        None, "--temperature", min=0.0, help="softmax temperature fitted on other answers (default 1)"
    ),
    temperature_file: Path | None = typer.Option(
        None, "--temperature-file", help="temperature.json of a run on another split (CV folds, train)"
    ),
) -> None:
    """Generate + blind check + baselines + score, all into one folder.

    Closed questions with a candidate set are also scored by their probabilities (AUC, sensitivity
    and specificity at the argmax, ECE over 15 bins, reliability.png) at a temperature fitted on
    other answers; the run writes temperature.json, fitted on its own split, for use on another.
    """
    from ultra.eval.generate import MissingMediaError
    from ultra.eval.report import print_report, rounded
    from ultra.eval.run import run_evaluation

    _check_modes(token_mode, compat)
    chosen_temperature, temperature_source = _temperature(temperature, temperature_file)
    records = _records(dataset, root, split)
    train = _baseline_records(dataset, root, train_split)
    answerer = _load_answerer(model, adapter, device, allow_untrained)
    try:
        metrics = run_evaluation(
            answerer,
            records,
            out,
            image_root=image_root,
            train_records=train,
            blind=blind,
            blind_only=blind_only,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            strict=strict,
            token_mode=token_mode,
            compat=compat,
            title=f"{dataset} {split} — {model}",
            limits=media_limits(max_pixels),
            allow_outside_root=allow_outside_root,
            choose=choose,
            temperature=chosen_temperature,
            temperature_source=temperature_source,
        )
    except MissingMediaError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(code=2) from None
    print_report(metrics, console)
    console.print(f"overall: {json.dumps(rounded(metrics['overall']), ensure_ascii=False)}", markup=False)


@eval_app.command("llava-med")
def llava_med(
    gt: Path = typer.Argument(..., help="LLaVA-Med test json (id, conversations, answer_type)"),
    pred: Path = typer.Argument(..., help="answers jsonl (question_id, text), same ids in the same order"),
    candidate: Path | None = typer.Option(None, "--candidate", help='candidate json {"0": [answers]}'),
    rule: str = typer.Option(
        "llava-med", "--rule", help="llava-med (v1.0.0) or llava-med-2023-08 (skips yes/no misses)"
    ),
) -> None:
    """Score LLaVA-Med's own files exactly as its run_eval.py does (v1.0.0 unless --rule)."""
    from rich.table import Table

    from ultra.eval.llava_med import RULE_TITLES, check_rule, read_llava_med_files, score_llava_med

    try:
        check_rule(rule)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--rule") from None
    try:
        items = read_llava_med_files(gt, pred)
        candidates = json.loads(candidate.read_text(encoding="utf-8"))["0"] if candidate else None
    except (OSError, ValueError, KeyError) as error:
        raise typer.BadParameter(str(error)) from None
    result = score_llava_med(items, candidates, rule)
    table = Table(title=f"{RULE_TITLES[rule]} scoring of {pred.name}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.items():
        table.add_row(name, f"{value:.2f}" if isinstance(value, float) else str(value))
    console.print(table)
