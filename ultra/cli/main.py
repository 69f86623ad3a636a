"""Entry point of the ``ultra`` console script.

Each command lives in its own module of ``ultra.cli`` and is registered here once it works. The
root group is a ``GuardedGroup``: an exception no command handled ends as one ``error:`` line and
exit code 2 (``--verbose`` adds the traceback).
"""

from __future__ import annotations

import typer

from ultra.cli.ask import ask
from ultra.cli.cv import cv
from ultra.cli.data import data_app
from ultra.cli.demo import demo
from ultra.cli.dicom import dicom, dicom_locate
from ultra.cli.errors import GuardedGroup
from ultra.cli.eval import eval_app
from ultra.cli.fusion import fusion_app
from ultra.cli.info import info
from ultra.cli.release import release_app
from ultra.cli.screen import screen_app
from ultra.cli.selftrain import selftrain_app
from ultra.cli.serve import serve
from ultra.cli.train import train
from ultra.logs import configure_logging

app = typer.Typer(
    name="ultra",
    help="Chinese ultrasound VQA toolkit (仅供研究，非临床诊断 — research use only).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=GuardedGroup,
)


@app.callback()
def main(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Debug logging, and the traceback of an unexpected error."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Warnings and errors only."),
) -> None:
    configure_logging(verbose=verbose, quiet=quiet)


app.command("info")(info)
app.command("ask")(ask)
app.command("dicom")(dicom)
app.command("dicom-locate")(dicom_locate)
app.command("demo")(demo)
app.command("train")(train)
app.command("cv")(cv)
app.command("serve")(serve)
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")
app.add_typer(fusion_app, name="fusion")
app.add_typer(release_app, name="release")
app.add_typer(screen_app, name="screen")
app.add_typer(selftrain_app, name="selftrain")
