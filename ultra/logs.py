"""Logging set-up for the CLI; library code only calls ``logging.getLogger(__name__)``."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """One switch for the whole toolkit: INFO by default, DEBUG with --verbose, WARNING with --quiet.

    Logs go to stderr, so stdout stays clean for what commands print (``--json`` lines)."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=Console(stderr=True), rich_tracebacks=verbose, show_path=verbose)],
        force=True,
    )
    for noisy in ("jieba", "PIL", "matplotlib", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
