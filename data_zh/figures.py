"""Every chart of the project is drawn here first: a ``matplotlib.figure.Figure`` on its own Agg
canvas, inside ``rc_context`` with the CJK fonts of :mod:`data_zh.fonts`.

No pyplot and no ``matplotlib.use``: the backend is process-wide state, and a library that
switches it breaks a caller's interactive session or notebook; a Figure with its own canvas needs
neither, is never registered with pyplot's figure manager (nothing to close, nothing leaks), and is
safe to draw from several threads at once. The rc settings hold only inside the ``with`` block,
so matplotlib's global settings are never rewritten.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from data_zh.fonts import cjk_rc_params

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["chinese_figure", "save_figure"]


@contextmanager
def chinese_figure(
    figsize: tuple[float, float], *, dpi: float = 100, layout: str | None = None, system_fonts: bool = True
) -> Iterator[Figure]:
    """A new Figure whose labels, made inside the ``with`` block, are drawn in the CJK fonts.

    Text takes its font when it is created, so draw inside the block; ``system_fonts=False``
    ignores installed CJK fonts and uses the bundled subset (what a bare machine shows)."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with rc_context(cjk_rc_params(system_fonts)):
        figure = Figure(figsize=figsize, dpi=dpi, layout=layout)
        FigureCanvasAgg(figure)
        yield figure


def save_figure(
    figure: Figure, path: str | Path, *, dpi: float | None = None, system_fonts: bool = True
) -> Path:
    """Write the figure (format from the suffix, PNG by default) and return its path.

    Saving re-enters the CJK rc settings: tick labels that matplotlib creates only while drawing
    get the same fonts as the rest, even when the figure is saved after its ``with`` block."""
    from matplotlib import rc_context

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rc_context(cjk_rc_params(system_fonts)):
        figure.savefig(path, dpi="figure" if dpi is None else dpi)
    return path
