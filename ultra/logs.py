"""Logging set-up for the CLI; library code only calls ``logging.getLogger(__name__)``."""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from rich.console import Console
from rich.logging import RichHandler

_P = ParamSpec("_P")
_R = TypeVar("_R")


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """One switch for the whole toolkit: INFO by default, DEBUG with --verbose, WARNING with --quiet.

    Log lines go to stderr: stdout carries a command's result (an answer, a table) and nothing else.
    Library progress bars show only with --verbose (see :func:`configure_library_progress_bars`)."""
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
    configure_library_progress_bars(show=verbose)


def configure_library_progress_bars(show: bool) -> None:
    """Keep transformers' and huggingface_hub's progress bars ("Loading weights", downloads) off the
    terminal unless ``show``: a command's output is its answer, not a loading bar.

    Both libraries read ``HF_HUB_DISABLE_PROGRESS_BARS`` when first imported (transformers follows
    the hub's setting), so setting it here costs no import; a value the user set wins. Libraries a
    test process imported earlier are switched through their own API."""
    if show:
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if os.environ["HF_HUB_DISABLE_PROGRESS_BARS"].strip().lower() not in {"1", "true", "yes", "on"}:
        return
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def log_duration(step: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a slow step (loading a model, answering) so --verbose shows what ran and how long."""

    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        logger = logging.getLogger(function.__module__)

        @functools.wraps(function)
        def timed(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            logger.debug("%s ...", step, stacklevel=2)
            start = time.perf_counter()
            result = function(*args, **kwargs)
            logger.debug("%s: %.2f s", step, time.perf_counter() - start, stacklevel=2)
            return result

        return timed

    return decorate
