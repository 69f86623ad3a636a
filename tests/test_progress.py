"""The one progress bar: drawn on a terminal, silent on a pipe or when turned off, and the loop
it wraps sees every item either way."""

from __future__ import annotations

import io

import pytest

from fusion.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_shows_description_count_and_unit():
    screen = Terminal()
    items = list(progress_bar(range(7), description="BUSI", unit="file", file=screen))
    assert items == list(range(7))
    shown = screen.getvalue()
    assert "BUSI" in shown and "7/7" in shown and "file/s" in shown


@pytest.mark.parametrize(("file", "enabled"), [(io.StringIO(), True), (Terminal(), False)], ids=["pipe", "off"])
def test_quiet_on_a_pipe_or_when_turned_off(file, enabled):
    with progress_bar(total=3, description="steps", enabled=enabled, file=file) as bar:
        bar.set_postfix(loss=1.0)
        bar.update(3)
    assert list(progress_bar(iter("abc"), enabled=enabled, file=file)) == ["a", "b", "c"]
    assert file.getvalue() == ""


def test_a_resumed_bar_starts_at_the_work_already_done():
    screen = Terminal()
    with progress_bar(total=10, initial=4, description="images", file=screen) as bar:
        bar.update(2)
        assert bar.n == 6
    assert "6/10" in screen.getvalue()
