"""``ultra train CONFIG.yaml``: run a training config (resumable), print where the results went."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def train(
    config: Path = typer.Argument(..., help="training YAML, e.g. configs/tiny-zh.yaml"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint, same data order"),
    max_steps: int | None = typer.Option(
        None,
        "--max-steps",
        help="cap every stage at this many steps (and validate on 16 records): a smoke run",
    ),
    output_dir: Path | None = typer.Option(None, "--output-dir", help="override the config's output_dir"),
    stop_after: int | None = typer.Option(
        None, "--stop-after", help="save a checkpoint and stop after this many steps (time-boxed jobs)"
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar (log files)"),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        metavar="PATH=VALUE",
        help="change the config for this run, e.g. --set stages.0.epochs=40",
    ),
) -> None:
    """Train a model: stage 0 / alignment / instruction stages as the config lists them."""
    from rich.markup import escape

    from ultra.config_io import ConfigError
    from ultra.train import TrainingInterrupted, load_train_config, run_training

    try:
        settings = load_train_config(config, overrides)
        if output_dir is not None:
            settings = settings.model_copy(update={"output_dir": str(output_dir)})
        result = run_training(
            settings, max_steps=max_steps, resume=resume, show_progress=not no_progress, stop_after=stop_after
        )
    except ConfigError as error:  # a bad field or an unknown objective: one message, no traceback
        message = str(error) if str(config) in str(error) else f"{config}: {error}"
        Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", highlight=False)
        raise typer.Exit(2) from None
    except TrainingInterrupted as stopped:
        Console().print(f"[yellow]{stopped}[/yellow]; continue with --resume")
        return
    console = Console()
    console.print(f"[green]done[/green] in {result.wall_s:.0f} s; model: {result.final_dir}")
    for row in result.stages:
        console.print(
            f"  {row['stage']}: {row['steps']} steps, {row['samples']} samples, "
            f"{row['wall_s']} s, {row['samples_per_s']} samples/s"
        )
    console.print(f"loss curve: {result.loss_curve}")
    if result.skipped_records:
        console.print(f"[yellow]{len(result.skipped_records)} record(s) skipped[/yellow] (see the log)")
