"""What a newcomer sees on the terminal: ``ultra ask`` prints the answer and the notice, nothing else."""

from __future__ import annotations

import os
import subprocess
import sys

from ultra import RESEARCH_NOTICE
from ultra.resources import examples_dir

QUESTION = "良性还是恶性？"


def _ask(*options: str) -> subprocess.CompletedProcess:
    image = examples_dir() / "busi" / "benign-1.png"
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_DISABLE_PROGRESS_BARS"}
    return subprocess.run(
        [sys.executable, "-m", "ultra", *options, "ask", "--image", str(image), "--question", QUESTION],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_ask_prints_only_the_answer_and_the_notice():
    result = _ask()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert len(lines) == 3 and lines[2] == "", result.stdout  # answer, notice, final newline
    answer, notice = lines[0], lines[1]
    assert answer.strip() and "\r" not in answer and "Loading" not in answer and "%|" not in answer
    assert notice == RESEARCH_NOTICE
    assert result.stderr == ""


def test_verbose_ask_logs_the_loading_step_and_its_time():
    result = _ask("--verbose")
    assert result.returncode == 0, result.stderr
    assert "loading the model ..." in result.stderr
    assert "loading the model:" in result.stderr and " s" in result.stderr
    assert result.stdout.split("\n")[1] == RESEARCH_NOTICE
