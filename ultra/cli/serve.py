"""``ultra serve``: the OpenAI-compatible API (``/v1/chat/completions``) with dynamic batching."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ultra.resources import DEFAULT_MODEL


def serve(
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="A preset name or a checkpoint folder."),
    adapter: Path | None = typer.Option(None, "--adapter", help="A LoRA adapter folder to apply."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    max_batch: int = typer.Option(16, "--max-batch", min=1, help="Most requests answered together."),
    batch_wait_ms: float = typer.Option(
        50.0, "--batch-wait-ms", min=0, help="Longest a batch waits for requests still being read."
    ),
    max_images: int = typer.Option(8, "--max-images", min=0, help="Most images in one prompt."),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="ULTRA_API_KEY", help="Require 'Authorization: Bearer KEY'."
    ),
    image_budget_mb: int = typer.Option(
        512, "--image-budget-mb", min=1, help="Decoded image bytes one request may hold (MB); past it a 400."
    ),
    server_image_budget_mb: int = typer.Option(
        2048,
        "--server-image-budget-mb",
        min=1,
        help="Decoded image bytes all requests may hold at once (MB); past it a 429.",
    ),
    max_body_mb: int = typer.Option(128, "--max-body-mb", min=1, help="Largest request body (MB); past it a 413."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    allow_untrained: bool = typer.Option(
        False, "--allow-untrained", help="Serve a model whose image projectors were never trained."
    ),
) -> None:
    """Serve the model over an OpenAI-compatible HTTP API (仅供研究，非临床诊断)."""
    from ultra.answerer import Answerer, UntrainedModelError
    from ultra.model import WeightsNotFoundError
    from ultra.serve import ServeOptions, needed_image_side, run_server, served_model_id

    errors = Console(stderr=True, soft_wrap=True)
    try:
        answerer = Answerer.load(model, adapter=adapter, device=device, allow_untrained=allow_untrained)
    except (WeightsNotFoundError, FileNotFoundError, UntrainedModelError) as error:
        errors.print(f"[red]error:[/red] {error}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    options = ServeOptions(
        model_id=served_model_id(model),
        max_images=max_images,
        api_key=api_key,
        max_side=needed_image_side(answerer),
        request_image_bytes=image_budget_mb << 20,
        server_image_bytes=server_image_budget_mb << 20,
        max_body_bytes=max_body_mb << 20,
    )
    run_server(answerer, options, host=host, port=port, max_batch=max_batch, batch_wait_ms=batch_wait_ms)
