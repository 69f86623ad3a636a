"""``ultra cv CONFIG``: choose a recipe without touching val (k-fold CV inside the BUSI train split).

A thin layer over :func:`ultra.train.cv.run_cv`, which writes ``cv.json`` and ``cv.md``; this
command prints the table of means with their t-intervals.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape


def _fold_indices(only: str | None) -> list[int] | None:
    if only is None:
        return None
    try:
        return [int(part) for part in only.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{only!r}: comma-separated fold indices, e.g. 0,1", param_hint="--only") from None


def cv(
    config: Path = typer.Argument(..., help="training YAML, e.g. configs/tiny-zh.yaml"),
    folds: int = typer.Option(5, "--folds", help="number of folds"),
    seed: int = typer.Option(0, "--seed", help="seed of the fold assignment"),
    only: str | None = typer.Option(None, "--only", help="comma-separated fold indices to run (default: all)"),
    max_steps: int | None = typer.Option(None, "--max-steps", help="cap every stage (a smoke run)"),
    reference: Path | None = typer.Option(None, "--reference", help="a classifier config to run in the folds"),
    output_dir: Path | None = typer.Option(None, "--output-dir", help="default: <output_dir>/cv"),
    classifier_only: bool = typer.Option(
        False,
        "--classifier-only",
        help="run only the leading classification stages, the tower (compare its variants)",
    ),
    train_fraction: float = typer.Option(
        1.0,
        "--train-fraction",
        help="train on a stratified fraction of each fold's training images (a learning curve)",
    ),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        metavar="PATH=VALUE",
        help="change the config for this run, e.g. --set stages.0.epochs=40 (VALUE is YAML; repeatable)",
    ),
) -> None:
    """Cross-validate a recipe inside the BUSI train split against a plain classifier in the same folds."""
    from ultra.config_io import ConfigError
    from ultra.eval.intervals import cv_markdown
    from ultra.train.config import load_train_config
    from ultra.train.cv import run_cv

    indices = _fold_indices(only)
    try:
        settings = load_train_config(config, overrides)
        classifier = load_train_config(reference) if reference is not None else None
        report = run_cv(
            settings,
            folds,
            seed,
            only=indices,
            max_steps=max_steps,
            reference=classifier,
            output_dir=output_dir,
            classifier_only=classifier_only,
            train_fraction=train_fraction,
        )
    except (ConfigError, ValueError) as error:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    typer.echo(cv_markdown(report["summary"], report["k"], report["seed"]))
