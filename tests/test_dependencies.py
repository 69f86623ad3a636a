"""The declared dependencies are the imported ones: deptry (configured in pyproject.toml with the
distribution -> module names and the plugins that are never imported by name) finds nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_deptry_finds_no_undeclared_or_unused_dependency():
    deptry = shutil.which("deptry")
    if deptry is None:
        pytest.skip("deptry is in the dev extra: pip install -e '.[dev]'")
    result = subprocess.run([deptry, "."], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "No dependency issues found" in result.stdout + result.stderr
