"""``ultra selftrain generate|judge|dpo|run CONFIG.yaml``: self-training with DPO (thin layer over
``ultra.selftrain``); every step reads the same config and writes under its ``output_dir``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

selftrain_app = typer.Typer(
    help="Self-training (STLLaVA-Med): the model asks and answers, a judge prefers, DPO aligns.",
    no_args_is_help=True,
)
console = Console()

CONFIG_HELP = "self-training YAML (ultra.selftrain.SelftrainConfig)"
ROUND_HELP = "which round's folder (round-N) to work in"
REMOTE_HELP = "allow a remote judge to receive images (only de-identified PNG pixels are sent)"


def _fail(message: str, code: int = 2) -> typer.Exit:
    from rich.markup import escape

    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _config(path: Path, allow_remote_images: bool = False):
    from ultra.config_io import ConfigError
    from ultra.selftrain import load_selftrain_config

    try:
        config = load_selftrain_config(path)
    except ConfigError as error:
        raise _fail(str(error)) from None
    if allow_remote_images:
        config = config.model_copy(update={"allow_remote_images": True})
    return config


def _guarded(work):
    """Run ``work``; a bad config, input or missing step is one line, never a traceback."""
    from ultra.config_io import ConfigError
    from ultra.selftrain import NoPairsError
    from ultra.train import TrainingInterrupted

    try:
        return work()
    except ConfigError as error:
        raise _fail(str(error)) from None
    except (NoPairsError, FileNotFoundError, ValueError) as error:
        raise _fail(str(error), 1) from None
    except TrainingInterrupted as stopped:
        console.print(f"[yellow]{stopped}[/yellow]; continue with --resume")
        raise typer.Exit(0) from None


def _policy(config, index: int) -> str:
    from ultra.selftrain.run import finished_rounds

    earlier = [row for row in finished_rounds(config.output_dir) if row["round"] == index - 1]
    return earlier[0]["model"] if earlier else config.model


@selftrain_app.command("generate")
def generate(
    config: Path = typer.Argument(..., help=CONFIG_HELP),
    round_index: int = typer.Option(1, "--round", min=1, help=ROUND_HELP),
    no_progress: bool = typer.Option(False, "--no-progress"),
) -> None:
    """The policy asks its own questions about each image and samples K answers (resumable)."""
    from ultra.selftrain.run import generate_round, round_dir

    settings = _config(config)
    report = _guarded(
        lambda: generate_round(settings, round_index, _policy(settings, round_index), not no_progress)
    )
    console.print(
        f"{report.images} images ({report.resumed_images} already done), {report.items} new questions, "
        f"{report.template_fallbacks} template fallbacks, {len(report.failed_images)} unreadable -> "
        f"{round_dir(settings, round_index) / 'candidates.jsonl'}"
    )


@selftrain_app.command("judge")
def judge(
    config: Path = typer.Argument(..., help=CONFIG_HELP),
    round_index: int = typer.Option(1, "--round", min=1, help=ROUND_HELP),
    allow_remote_images: bool = typer.Option(False, "--allow-remote-images", help=REMOTE_HELP),
    no_progress: bool = typer.Option(False, "--no-progress"),
) -> None:
    """Score the answers with the configured judge and write preference pairs (drops counted)."""
    from ultra.selftrain.run import judge_round, round_dir

    settings = _config(config, allow_remote_images)
    folder = round_dir(settings, round_index)
    if not (folder / "candidates.jsonl").exists():
        raise _fail(f"{folder / 'candidates.jsonl'}: not found; run `ultra selftrain generate` first", 1)
    counts = _guarded(lambda: judge_round(settings, folder, False, not no_progress))
    console.print(
        f"{counts['questions']} questions -> {counts['pairs']} pairs ({counts['pairs_train']} train, "
        f"{counts['pairs_held_out']} held out); dropped: {counts['dropped'] or 'none'}; "
        f"mean judge score {counts['mean_score']}"
    )


@selftrain_app.command("dpo")
def dpo(
    config: Path = typer.Argument(..., help=CONFIG_HELP),
    round_index: int = typer.Option(1, "--round", min=1, help=ROUND_HELP),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint, same data order"),
    stop_after: int | None = typer.Option(None, "--stop-after", help="checkpoint and stop after N steps"),
    no_progress: bool = typer.Option(False, "--no-progress"),
) -> None:
    """DPO with LoRA against a frozen reference on the round's pairs; loss and margin curves as PNG."""
    from ultra.selftrain.run import dpo_round

    settings = _config(config)
    result = _guarded(
        lambda: dpo_round(
            settings,
            round_index,
            _policy(settings, round_index),
            resume=resume,
            stop_after=stop_after,
            show_progress=not no_progress,
        )
    )
    console.print(
        f"[green]done[/green]: {result.steps} steps in {result.wall_s:.0f} s; model: {result.final_dir}"
    )
    console.print(f"curves: {result.curves}")


@selftrain_app.command("run")
def run(
    config: Path = typer.Argument(..., help=CONFIG_HELP),
    resume: bool = typer.Option(False, "--resume", help="continue a killed run where it stopped"),
    allow_remote_images: bool = typer.Option(False, "--allow-remote-images", help=REMOTE_HELP),
    no_progress: bool = typer.Option(False, "--no-progress"),
) -> None:
    """generate -> judge -> DPO for the config's rounds; each round's scores go to rounds.jsonl."""
    from ultra.selftrain import run_selftrain

    settings = _config(config, allow_remote_images)
    rounds = _guarded(lambda: run_selftrain(settings, resume=resume, show_progress=not no_progress))
    for row in rounds:
        judged = row["judge"]
        console.print(
            f"round {row['round']}: {judged['pairs']} pairs, dropped {judged['dropped'] or 'none'}, "
            f"mean judge score {judged['mean_score']}, held-out reward margin "
            f"{row['dpo']['held_out_reward_margin']}, {row['wall_s']} s -> {row['model']}"
        )
