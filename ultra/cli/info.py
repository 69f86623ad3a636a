"""``ultra info``: what this installation can do."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ultra.environment import collect_environment


def info() -> None:
    """Show library versions, model presets, bundled files, optional extras and devices."""
    report = collect_environment()
    console = Console()
    table = Table(title=f"ultra on Python {report.python}", show_header=True)
    table.add_column("item")
    table.add_column("value")
    for name, version in report.libraries.items():
        table.add_row(name, version or "[red]not installed[/red]")
    for extra, ok in report.extras.items():
        table.add_row(
            f"extra: {extra}", "[green]available[/green]" if ok else "[yellow]not installed[/yellow]"
        )
    table.add_row("devices", ", ".join(report.devices))
    table.add_row("model presets", ", ".join(report.presets) or "(none registered)")
    state = "present" if report.embedded_model_present else "not trained yet"
    table.add_row("embedded model", f"{report.embedded_model} ({state})")
    table.add_row("examples", report.examples)
    console.print(table)
