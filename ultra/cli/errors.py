"""The CLI's one last line of defence: any exception a command lets through becomes one line.

Commands report what they expect themselves; whatever escapes them (a bad input a reader did not
foresee, a full disk) is printed as ``error: <what>`` on stderr with exit code 2, never as a stack
trace. ``ultra --verbose …`` prints the traceback above that line, for bug reports.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

USAGE_ERROR = 2
# Errors of the input itself: their message already says what and which file. Anything else is
# unexpected, so its type is shown too.
INPUT_ERRORS = (ValueError, OSError)


def error_line(error: BaseException) -> str:
    """``error: <message>`` on one line (multi-line messages, e.g. pydantic's, are joined)."""
    message = " ".join(str(error).split())
    if not isinstance(error, INPUT_ERRORS) or not message:
        message = f"{type(error).__name__}: {message}" if message else type(error).__name__
        message += " (ultra --verbose … shows the traceback)"
    return f"error: {message}"


class GuardedGroup(TyperGroup):
    """The root command group: runs the command and turns an escaped exception into one line.

    Typer's own exits and usage errors pass through untouched; so do KeyboardInterrupt and
    SystemExit, which are not ``Exception``s.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (TyperException, typer.Exit, typer.Abort):
            raise
        except Exception as error:
            if ctx.params.get("verbose"):
                traceback.print_exception(error, file=sys.stderr)
            print(error_line(error), file=sys.stderr, flush=True)
            raise typer.Exit(USAGE_ERROR) from None
