"""Starting the API: load the model once, wrap it in a ``DynamicBatcher``, run uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path

from ultra.answerer import Answerer
from ultra.serve.app import ServeOptions, create_app
from ultra.serve.batcher import DynamicBatcher

logger = logging.getLogger(__name__)


def served_model_id(model: str | Path) -> str:
    """The id clients send as ``model``: ``ultra-tiny-zh`` for the embedded model, else the
    preset name or the checkpoint folder's name."""
    name = Path(str(model)).name
    return name if name.startswith("ultra") else f"ultra-{name}"


SIDE_MARGIN = 4
"""Images are kept at this many times the largest encoder input (twice that when the model crops
the scan region first), so the encoders' own resize still starts from more pixels than it keeps."""


def needed_image_side(answerer: Answerer) -> int | None:
    """The longest image side the model can use, from its encoders' input sizes (``None`` when an
    encoder states none: images are then kept as sent)."""
    processor = answerer.processor
    sizes = [getattr(transform, "size", None) for transform in processor.image_transforms]
    if not sizes or any(not isinstance(size, int) for size in sizes):
        return None
    crop = 2 if processor.crop_scan_region else 1
    return max(sizes) * SIDE_MARGIN * crop


def run_server(
    answerer: Answerer,
    options: ServeOptions,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch: int = 16,
    batch_wait_ms: float = 50.0,
) -> None:
    """Serve until interrupted (uvicorn's access log shows paths and statuses, never bodies)."""
    import uvicorn

    batcher = DynamicBatcher(answerer, max_batch=max_batch, wait_ms=batch_wait_ms)
    app = create_app(batcher, options)
    logger.info(
        "serving %s on http://%s:%d (max batch %d, wait %.0f ms, images shrunk to %s px)",
        options.model_id,
        host,
        port,
        max_batch,
        batch_wait_ms,
        options.max_side or "no limit of",
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        batcher.stop()
