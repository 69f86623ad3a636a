"""``ultra screen``: score a report's images, weigh them, flag duplicates and blank frames, keep the useful ones."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

screen_app = typer.Typer(
    help="Screen the images of multi-image reports against the report text (仅供研究，非临床诊断)."
)


@dataclass(frozen=True)
class ReportInput:
    """One report: its text, its images as the user wrote them, and where they are."""

    report: str
    names: list[str]
    paths: list[Path]


def _read_image(path: Path):
    """The one place this command reads an image file (PNG/JPEG/DICOM…), through ``ultra.media``."""
    from ultra.media import MediaError, read_image

    try:
        return read_image(path)
    except MediaError as error:
        raise ValueError(str(error)) from None


def _reports_from_jsonl(path: Path) -> list[ReportInput | str]:
    """Each line ``{"report": "…", "images": ["a.png", …]}`` (paths relative to the file's folder);
    a bad line becomes an error message naming file and line, so the other reports still run."""
    from data_zh.io import jsonl_lines, parse_json_bytes

    try:
        lines = list(jsonl_lines(path))
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror})") from None
    reports: list[ReportInput | str] = []
    for number, line in lines:
        try:
            row = parse_json_bytes(line)
            text, names = row["report"], row["images"]
            if not isinstance(text, str) or not isinstance(names, list) or not names:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            reports.append(f'{path}:{number}: expected {{"report": text, "images": [paths, …]}}')
            continue
        names = [str(name) for name in names]
        paths = [Path(name) if Path(name).is_absolute() else path.parent / name for name in names]
        reports.append(ReportInput(text, names, paths))
    return reports


def _sheet_path(sheet: Path, number: int, count: int) -> Path:
    return sheet if count == 1 else sheet.with_name(f"{sheet.stem}-{number:03d}{sheet.suffix or '.png'}")


def _print_table(console: Console, result, names: list[str]) -> None:
    table = Table("index", "image", "score", "weight", "keep", "group", "reason", title=escape(result.report))
    for verdict, name in zip(result.images, names, strict=True):
        table.add_row(
            str(verdict.index),
            escape(name),
            f"{verdict.score:.3f}",
            f"{verdict.weight:.3f}",
            "yes" if verdict.keep else "no",
            str(verdict.group),
            verdict.reason or "",
        )
    console.print(table)


@screen_app.callback(invoke_without_command=True)
def screen(
    ctx: typer.Context,
    text: str | None = typer.Option(None, "--text", "-t", help="The report text (Chinese)."),
    image: list[Path] = typer.Option(None, "--image", "-i", help="An image of the report; repeat for each."),
    reports: Path | None = typer.Option(
        None,
        "--reports",
        help='JSONL, one {"report": text, "images": list of paths relative to the file} per line.',
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per report on stdout."),
    sheet: Path | None = typer.Option(
        None, "--sheet", help="Write a contact-sheet PNG (numbered per report when there are several)."
    ),
    student: Path | None = typer.Option(
        None, "--student", help="A student folder (screening.save_student); default: the shipped one."
    ),
    temperature: float = typer.Option(1.0, "--temperature", min=1e-6, help="Softmax temperature."),
    beta: float = typer.Option(1.0, "--beta", min=1e-6, help="Keep images with weight >= beta / N."),
    mass: float | None = typer.Option(
        None, "--mass", min=1e-6, max=1.0, help="Instead keep the fewest images covering this weight mass."
    ),
) -> None:
    """Score each image against the report, weigh (softmax), group near-duplicates, flag blank frames."""
    if ctx.invoked_subcommand is not None:
        return
    errors = Console(stderr=True, soft_wrap=True, highlight=False)
    console = Console(soft_wrap=True, highlight=False)

    def fail(message: str, code: int = 2) -> None:
        errors.print(f"[red]error:[/red] {escape(message)}")
        raise typer.Exit(code)

    if (reports is None) == (text is None):
        fail("give either --text with --image (one report) or --reports FILE.jsonl")
    if text is not None and not image:
        fail("--text needs at least one --image")
    if reports is not None and image:
        fail("--image goes with --text; list a report's images in the --reports file instead")
    try:
        inputs = (
            [ReportInput(text, [str(path) for path in image], list(image))]
            if text is not None
            else _reports_from_jsonl(reports)
        )
    except ValueError as error:
        fail(str(error))

    from screening import ScreenerConfig, SelectionConfig, write_contact_sheet
    from ultra.screen import NoStudentError, load_report_screener

    selection = SelectionConfig(rule="mass", mass=mass) if mass is not None else SelectionConfig(beta=beta)
    try:
        screener = load_report_screener(student, ScreenerConfig(temperature=temperature, selection=selection))
    except (NoStudentError, FileNotFoundError, ValueError) as error:
        fail(str(error), code=1)

    failed = 0
    for number, item in enumerate(inputs, start=1):
        if isinstance(item, str):
            errors.print(f"[red]error:[/red] {escape(item)}")
            failed += 1
            continue
        try:
            images = [_read_image(path) for path in item.paths]
        except ValueError as error:
            errors.print(f"[red]error:[/red] report {number}: {escape(str(error))}")
            failed += 1
            continue
        result = screener.screen(item.report, images)
        if as_json:
            typer.echo(json.dumps(result.as_dict(item.names), ensure_ascii=False))
        else:
            _print_table(console, result, item.names)
        if sheet is not None:
            written = write_contact_sheet(result, images, _sheet_path(sheet, number, len(inputs)))
            errors.print(f"contact sheet: {escape(str(written))}")
    if failed:
        raise typer.Exit(1 if failed < len(inputs) else 2)


@screen_app.command("train")
def train(
    config: Path = typer.Argument(
        ..., help="training YAML with distill stages, e.g. configs/screening-tiny-zh.yaml"
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", help="cap every stage at this many steps (smoke run)"
    ),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint"),
    output_dir: Path | None = typer.Option(None, "--output-dir", help="override the config's output_dir"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar (log files)"),
) -> None:
    """Train the screening student from the VLM teacher (distill): student folder + loss-curve PNG."""
    from ultra.config_io import ConfigError
    from ultra.train import load_train_config
    from ultra.train.screening_student import train_screening_student

    console = Console(soft_wrap=True, highlight=False)
    errors = Console(stderr=True, soft_wrap=True, highlight=False)
    try:
        settings = load_train_config(config)
        if output_dir is not None:
            settings = settings.model_copy(update={"output_dir": str(output_dir)})
        result = train_screening_student(
            settings, max_steps=max_steps, resume=resume, show_progress=not no_progress
        )
    except (ConfigError, ValueError, FileNotFoundError) as error:
        errors.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    console.print(f"[green]done[/green] in {result.wall_s:.0f} s; student: {escape(str(result.student_dir))}")
    for row in result.stages:
        console.print(f"  {row['stage']}: {row['steps']} steps, {row['samples']} reports, {row['wall_s']} s")
    console.print(f"loss curve: {escape(str(result.loss_curve))}")
    if result.skipped_records:
        console.print(f"[yellow]{len(result.skipped_records)} report(s) skipped[/yellow] (see the log)")
