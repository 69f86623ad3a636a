"""``ultra serve``: an OpenAI-compatible chat-completions API over ``ultra.Answerer`` with dynamic
batching (concurrent requests answered by one batched generate, each streamed to its client)."""

from ultra.serve.app import NOTICE_HEADER, ServeOptions, create_app
from ultra.serve.batcher import BatchedStream, DynamicBatcher
from ultra.serve.errors import APIError
from ultra.serve.server import needed_image_side, run_server, served_model_id

__all__ = [
    "NOTICE_HEADER",
    "APIError",
    "BatchedStream",
    "DynamicBatcher",
    "ServeOptions",
    "create_app",
    "needed_image_side",
    "run_server",
    "served_model_id",
]
