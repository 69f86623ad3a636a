"""The installable package, its CLI, configuration and logging."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from ultra.cli.main import app
from ultra.config_io import ConfigError, dump_config, load_config
from ultra.environment import KEY_LIBRARIES, collect_environment


def test_every_top_level_package_imports():
    for name in ("ultra", "fusion", "screening", "data_zh", "demo"):
        assert importlib.import_module(name).__name__ == name


def test_info_reports_real_versions():
    report = collect_environment()
    assert report.libraries["torch"] == importlib.metadata.version("torch")
    assert report.libraries["pydicom"] == importlib.metadata.version("pydicom")
    assert report.devices[0].startswith("cpu")


def test_cli_info_and_help_run_as_console_script():
    result = subprocess.run(
        [sys.executable, "-m", "ultra", "info"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert result.returncode == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "…" not in result.stdout, result.stdout  # wrapped, never cut
    for name in KEY_LIBRARIES:
        assert f"│ {name} " in result.stdout, name
    assert importlib.metadata.version("transformers") in result.stdout
    help_text = CliRunner().invoke(app, ["--help"]).output
    assert "info" in help_text


def test_info_imports_torch_only():
    """Versions come from package metadata and extras from module specs: the model registry (timm,
    torchvision), transformers and the extras (ray, trl) stay unimported; they made it take 10-17 s."""
    code = (
        "import sys; from ultra.environment import collect_environment; collect_environment(); "
        "print(' '.join(sorted(m for m in ('timm', 'torchvision', 'transformers', 'ray', 'trl', 'fusion') "
        "if m in sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_info_lists_presets_when_asked():
    assert collect_environment().presets == []
    assert "tiny-zh" in collect_environment(with_presets=True).presets


class _Optimiser(BaseModel):
    lr: float = Field(gt=0)
    steps: int = 10


class _Run(BaseModel):
    name: str
    optimiser: _Optimiser


def test_config_round_trip(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: 试验\noptimiser:\n  lr: 0.001\n", encoding="utf-8")
    config = load_config(path, _Run)
    assert config.optimiser.lr == pytest.approx(0.001)
    dump_config(config, tmp_path / "again.yaml")
    assert load_config(tmp_path / "again.yaml", _Run) == config
    assert "试验" in (tmp_path / "again.yaml").read_text(encoding="utf-8")


def test_config_error_names_the_bad_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\noptimiser:\n  lr: -1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, _Run)
    assert "optimiser.lr" in str(caught.value) and str(path) in str(caught.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", _Run)
