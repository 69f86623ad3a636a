"""``ultra info``: what this installation can do."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from ultra.environment import collect_environment


def info(
    presets: bool = typer.Option(
        False, "--presets", help="Also list the model presets (loads the model registry: a few seconds)."
    ),
) -> None:
    """Show library versions, bundled files, optional extras and devices (and model presets)."""
    report = collect_environment(with_presets=presets)
    console = Console()
    table = Table(title=f"ultra on Python {report.python}", show_header=True)
    table.add_column("item", overflow="fold")  # narrow terminals wrap, nothing is cut
    table.add_column("value", overflow="fold")
    for name, version in report.libraries.items():
        table.add_row(name, version or "[red]not installed[/red]")
    for extra, ok in report.extras.items():
        table.add_row(
            f"extra: {extra}", "[green]available[/green]" if ok else "[yellow]not installed[/yellow]"
        )
    table.add_row("devices", ", ".join(report.devices))
    if presets:
        table.add_row("model presets", ", ".join(report.presets) or "(none registered)")
    state = "present" if report.embedded_model_present else "not trained yet"
    table.add_row("embedded model", f"{report.embedded_model} ({state})")
    table.add_row("examples", report.examples)
    console.print(table)
