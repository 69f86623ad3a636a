"""``ultra release``: the embedded release in one command; ``ultra release examples`` redraws the
bundled examples alone. Thin layers over :func:`ultra.release.release` and
:func:`ultra.release.write_examples`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

release_app = typer.Typer(
    help="Release ultra-tiny-zh with its screening student, card and examples (trains both: hours on CPU)."
)
BUSI_HELP = "the BUSI folder"
DEFAULT_BUSI = Path("../shared/data/busi")


def _fail(error: Exception) -> None:
    Console(stderr=True).print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@release_app.callback(invoke_without_command=True)
def release(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", help="the model's recipe (default: configs/tiny-zh.yaml)"),
    screening: Path | None = typer.Option(
        None, "--screening", help="the student's recipe (default: configs/screening-tiny-zh.yaml)"
    ),
    cv: Path | None = typer.Option(None, "--cv", help="cv.json of ultra cv (for the card)"),
    selection: Path | None = typer.Option(
        None, "--selection", help="markdown: how the recipe was chosen (for the card)"
    ),
    busi: Path = typer.Option(DEFAULT_BUSI, "--busi", help=BUSI_HELP),
    dicom: Path = typer.Option(Path("../shared/data/dicom"), "--dicom", help="the DICOM folder"),
    weights_dir: Path | None = typer.Option(
        None,
        "--weights-dir",
        help="where both folders go (default: the package's; elsewhere, the examples go there too)",
    ),
    output_dir: Path | None = typer.Option(None, "--output-dir", help="the run folder (default: the config's)"),
    max_steps: int | None = typer.Option(None, "--max-steps", help="cap every stage (a smoke run)"),
) -> None:
    """Train the model, score val once, train the screening student, ship both with the card."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from ultra.config_io import ConfigError
    from ultra.release.release import (
        RECIPE,
        SCREENING_RECIPE,
        SHIPPED_WEIGHTS,
        ReleaseError,
        release_command,
        release_paths,
        selection_text,
    )
    from ultra.release.release import release as run_release
    from ultra.release.shippable import LicenceError
    from ultra.train.config import load_train_config

    try:
        settings = load_train_config(config or Path(RECIPE))
        if output_dir is not None:
            settings = settings.model_copy(update={"output_dir": str(output_dir)})
        student_recipe = load_train_config(screening or Path(SCREENING_RECIPE))
        cv_report = json.loads(cv.read_text(encoding="utf-8")) if cv else None
        paths = release_paths(weights_dir or SHIPPED_WEIGHTS, busi, dicom)
        facts = run_release(
            settings,
            student_recipe,
            paths,
            cv_report=cv_report,
            selection=selection_text(selection) if selection else "",
            command=release_command(cv, selection),
            max_steps=max_steps,
        )
    except (ConfigError, LicenceError, ReleaseError, OSError, ValueError) as error:
        _fail(error)
    for shipped in facts.files:
        typer.echo(f"{shipped.name}  {shipped.size_mb:.1f} MB  sha256 {shipped.sha256}")


@release_app.command("examples")
def examples(
    seed: int = typer.Option(0, "--seed", help="seed of the draw"),
    busi: Path = typer.Option(DEFAULT_BUSI, "--busi", help=BUSI_HELP),
    model: Path | None = typer.Option(None, "--model", help="model folder (default: the embedded one)"),
    out: Path | None = typer.Option(None, "--out", help="where README.md and examples.json go (default: the bundled ultra/examples/busi)"),
    copy_images: bool = typer.Option(False, "--copy-images", help="replace the images in --out by the draw"),
    per_class: int = typer.Option(2, "--per-class", help="images of each label"),
    project_readme: Path | None = typer.Option(
        None, "--project-readme", help="also refresh this README's table"
    ),
) -> None:
    """Draw the BUSI examples from val by a seeded shuffle and record the model's answers, right or wrong."""
    from ultra.release.examples import write_examples
    from ultra.resources import examples_dir

    try:
        paths = write_examples(
            model, busi, seed, out or examples_dir() / "busi", copy_images, per_class, project_readme
        )
    except (OSError, ValueError) as error:
        _fail(error)
    typer.echo(paths["readme"].read_text(encoding="utf-8"))
