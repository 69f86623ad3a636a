"""The embedded model's card names only commands, modules and files that exist, with nothing elided."""

from __future__ import annotations

import importlib.util
import inspect
import re

import pytest
import typer

from tests.conftest import REPO_ROOT
from ultra.cli.main import app
from ultra.release import model_card
from ultra.resources import embedded_model_dir


def _card_texts() -> dict[str, str]:
    return {
        "MODEL_CARD.md": (embedded_model_dir() / "MODEL_CARD.md").read_text(encoding="utf-8"),
        "render_model_card": inspect.getsource(model_card),
    }


def _resolves(words: list[str]) -> bool:
    command = typer.main.get_command(app)
    for word in words:
        if not hasattr(command, "list_commands"):
            return True  # a leaf command: the rest are its arguments
        if word not in command.list_commands(None):
            return False
        command = command.get_command(None, word)
    return True


@pytest.mark.parametrize("name", ["MODEL_CARD.md", "render_model_card"])
def test_model_card_mentions_only_what_exists(name):
    text = _card_texts()[name]
    assert "…" not in text
    commands = re.findall(r"`ultra ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)*)", text)
    assert commands, "the card shows how to use the model"
    for command in commands:
        assert _resolves(command.split()), f"{name}: `ultra {command}` is not a command"
    for module in re.findall(r"python -m ([\w.]+)", text):
        assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
    for path in re.findall(r"(configs/[\w.-]+\.yaml)", text):
        assert (REPO_ROOT / path).is_file(), f"{name}: {path} does not exist"
