"""``ultra fusion``: list the vision encoders, crop ultrasound images to their scan regions."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()
fusion_app = typer.Typer(help="Vision encoders and ultrasound scan-region cropping.", no_args_is_help=True)


@fusion_app.command("encoders")
def encoders() -> None:
    """The registered encoder specs (timm model, feature layer, input size, how loaded), then each
    package-sourced checkpoint's licence, install state and SHA-256."""
    from fusion import ENCODERS

    table = Table()  # narrow terminals fold the long columns; the names stay whole, nothing is cut
    table.add_column("name", no_wrap=True)
    for column in ("timm model", "layer", "input px", "loaded from"):
        table.add_column(column, overflow="fold")
    for name in ENCODERS.names():
        spec = ENCODERS[name]
        table.add_row(name, spec.timm_name, str(spec.feature_layer), str(spec.input_size), spec.weights_origin)
    console.print(table)
    for name in ENCODERS.names():
        weights = ENCODERS[name].weights
        if weights is None:
            continue
        installed = weights.is_installed()
        # short lines, so the 64-digit hash and the pip command stay whole at 80 columns
        console.print(f"{name}: {weights.package} ({weights.licence}){', installed' if installed else ''}")
        console.print(f"  sha256 {weights.sha256}", highlight=False)
        if not installed:
            console.print(f"  not installed: {weights.pip_command}", highlight=False)


@fusion_app.command("crop")
def crop(
    images: list[Path] = typer.Argument(..., help="Images (PNG/JPEG/DICOM) to crop."),
    outdir: Path = typer.Option(..., "--out", "-o", help="Folder for crops, previews and crops.jsonl."),
    previews: bool = typer.Option(
        True, "--previews/--no-previews", help="Also write the frame with its box drawn."
    ),
) -> None:
    """Crop each image to its ultrasound scan region (black margins and burned-in text removed)."""
    from fusion import crop_image_files
    from fusion.progress import progress_bar
    from ultra.media import read_image

    with progress_bar(total=len(images), description="cropping", unit="image") as progress:
        results = crop_image_files(
            images, outdir, loader=read_image, previews=previews, on_done=lambda _: progress.update()
        )
    failed = [r for r in results if r.error]
    for result in failed:
        console.print(f"[red]{result.error}[/]")
    console.print(f"cropped {len(results) - len(failed)} of {len(results)} → {outdir / 'crops.jsonl'}")
    if failed and len(failed) == len(results):
        raise typer.Exit(1)
