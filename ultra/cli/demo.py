"""``ultra demo``: the Gradio web page (``demo/``), Chinese, on loopback by default."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ultra.resources import DEFAULT_MODEL


def demo(
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="A preset name or a checkpoint folder."),
    adapter: Path | None = typer.Option(None, "--adapter", help="A LoRA adapter folder to apply."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(7860, "--port", min=1, max=65535),
    auth: str | None = typer.Option(None, "--auth", help="Require a login, given as user:password."),
    max_file_size: str = typer.Option("20mb", "--max-file-size", help="Largest upload, e.g. 20mb."),
    concurrency: int = typer.Option(2, "--concurrency", min=1, help="Answers generated at once."),
    screening_student: Path | None = typer.Option(
        None,
        "--screening-student",
        help="A screening student folder: adds the 报告筛选 tab (default: the shipped one, if any).",
    ),
    allow_untrained: bool = typer.Option(
        False, "--allow-untrained", help="Run a model whose image projectors were never trained."
    ),
) -> None:
    """Start the web demo: image chat and surgical video chat (仅供研究，非临床诊断)."""
    credentials = None
    if auth is not None:
        user, colon, password = auth.partition(":")
        if not (user and colon and password):
            raise typer.BadParameter("expected user:password", param_hint="--auth")
        credentials = (user, password)
    import os

    from demo.uploads import SessionFiles, parse_size

    try:
        parse_size(max_file_size)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--max-file-size") from None
    files = SessionFiles()  # also deletes what runs that died (kill -9) left behind
    if files.removed_leftovers:
        Console(stderr=True).print(f"removed {files.removed_leftovers} leftover upload folder(s)")
    os.environ.update(files.gradio_environment())  # before Gradio is imported
    from demo.app import DemoOptions, launch_demo
    from ultra.answerer import UntrainedModelError
    from ultra.model import WeightsNotFoundError

    options = DemoOptions(
        model=model,
        adapter=str(adapter) if adapter else None,
        host=host,
        port=port,
        auth=credentials,
        max_file_size=max_file_size,
        concurrency_limit=concurrency,
        allow_untrained=allow_untrained,
        screening_student=str(screening_student) if screening_student else None,
    )
    try:
        launch_demo(options, files)
    except (WeightsNotFoundError, FileNotFoundError, UntrainedModelError) as error:
        Console(stderr=True).print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
