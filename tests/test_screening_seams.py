"""Screening wired into ultra's surfaces: ``ultra ask --report`` and ``ultra dicom --screen`` (the
``ImageSelector`` seam).

The student is real: trained here with ``screening.train_on_labels`` on a few TRAIN-split reports
over the embedded ``ultra-tiny-zh`` vision tower (the backbone ``ultra ask`` answers with), so each
seam is checked against the Python API of the same trained screener.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import screening
from data_zh.builders.report_benchmark import ReportBenchmarkConfig, build_report_benchmark
from ultra import RESEARCH_NOTICE
from ultra.answerer import Answerer, GenerationSettings, Request
from ultra.media import read_image
from ultra.resources import embedded_model_dir
from ultra.screen.seams import screen_request

QUESTION = "图像中是否可见病灶？"


@pytest.fixture(scope="module")
def answerer() -> Answerer:
    if not (embedded_model_dir() / "model.safetensors").is_file():
        pytest.skip("the embedded tiny-zh model is not in this checkout")
    return Answerer.load("tiny-zh")


@pytest.fixture(scope="module")
def reports(shared_data: Path, tmp_path_factory):
    config = ReportBenchmarkConfig(
        duplicates=1, other_class=1, blank=1, laparoscopy=0, other_modality=0, max_side=96
    )
    folder = tmp_path_factory.mktemp("reports")
    return build_report_benchmark(
        shared_data / "busi", folder, split="train", n_reports=8, seed=3, config=config
    )


@pytest.fixture(scope="module")
def student_dir(answerer, reports, tmp_path_factory) -> Path:
    fusion = answerer.model.vision_tower
    student = screening.new_student(fusion, "tiny-zh", embed_dim=32, text_embed_dim=16, buckets=512)
    losses = screening.train_on_labels(
        student, fusion, screening.reports_from_records(reports), screening.LabelTrainingConfig(epochs=8)
    )
    assert losses[-1] < losses[0], f"the student did not learn: {losses}"
    return screening.save_student(student, tmp_path_factory.mktemp("student") / "student")


@pytest.fixture(scope="module")
def screener(answerer, student_dir) -> screening.ReportScreener:
    return screening.ReportScreener(answerer.model.vision_tower, screening.load_student(student_dir))


def _run_ultra(*args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_DISABLE_PROGRESS_BARS"}
    return subprocess.run(
        [sys.executable, "-m", "ultra", *args], capture_output=True, text=True, timeout=300, env=env
    )


def assert_same_screening(got: dict, want: dict) -> None:
    """The same verdicts, scores and weights equal to float32 precision: the CLI process may run on
    another number of threads, which reorders the sums inside the student."""
    numeric = ("score", "weight")
    assert got["report"] == want["report"]
    assert [{k: v for k, v in row.items() if k not in numeric} for row in got["images"]] == [
        {k: v for k, v in row.items() if k not in numeric} for row in want["images"]
    ]
    tolerance = 1_000 * torch.finfo(torch.float32).eps  # a few hundred float32 accumulations
    np.testing.assert_allclose(
        [[row[k] for k in numeric] for row in got["images"]],
        [[row[k] for k in numeric] for row in want["images"]],
        rtol=tolerance,
        atol=tolerance,
    )


def test_ask_report_answers_on_the_kept_images_and_reports_the_weights(
    answerer, screener, student_dir, reports, tmp_path
) -> None:
    record = reports[0]
    paths = [record.media.resolve(rel) for rel in record.media.images]
    report = record.extra["report"]
    base = ["ask", "-q", QUESTION, *[part for path in paths for part in ("-i", str(path))]]
    base += ["--report", report, "--student", str(student_dir), "--max-new-tokens", "8"]
    as_json = _run_ultra(*base, "--json")
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    pictures = [read_image(path) for path in paths]
    expected = screener.screen(report, pictures)
    assert_same_screening(payload["screening"], expected.as_dict([str(path) for path in paths]))
    assert payload["notice"] == RESEARCH_NOTICE
    assert 0 < len(expected.kept) < len(paths), "the trained student should drop the blank / copy"
    kept = Request(QUESTION, pictures, settings=GenerationSettings(max_new_tokens=8))
    screened, _ = screen_request(screener, report, kept)
    assert len(screened.images) == len(expected.kept) and screened.image_weights is None
    assert payload["answer"] == answerer.answer([screened])[0].text

    plain = _run_ultra(*base)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.split("\n") == [payload["answer"], RESEARCH_NOTICE, ""]
    lines = [line for line in plain.stderr.splitlines() if line.startswith("screening: ")]
    assert len(lines) == len(paths)
    for line, verdict in zip(lines, expected.images, strict=True):
        assert f"weight {verdict.weight:.3f}" in line and (("keep" in line) == verdict.keep)


def test_ask_report_without_a_student_is_one_clear_line(reports, tmp_path) -> None:
    record = reports[0]
    images = [part for rel in record.media.images[:2] for part in ("-i", str(record.media.resolve(rel)))]
    result = _run_ultra(
        "ask", "-q", QUESTION, *images, "--report", "报告", "--student", str(tmp_path / "none")
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: --report:") and "not a screening student folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_dicom_screen_keeps_what_the_screener_keeps(
    shared_data: Path, screener, student_dir, tmp_path
) -> None:
    from typer.testing import CliRunner

    from ultra.cli.main import app

    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(shared_data / "dicom" / "us" / "OBXXXX1A_2frame.dcm", source / "cine.dcm")
    key = tmp_path / "deid.key"
    key.write_text("screening-seam-key-0123456789abcdef")
    out = tmp_path / "out"
    report = "乳腺内见局灶性病灶，倾向良性。"
    base = ["dicom", str(source), str(out), "--deid-key", str(key), "--workers", "1", "--screen"]
    no_text = CliRunner().invoke(app, base)
    assert no_text.exit_code == 2 and "--report" in no_text.output, no_text.output
    result = CliRunner().invoke(app, [*base, "--report", report, "--student", str(student_dir)])
    assert result.exit_code == 0, result.output
    (line,) = [json.loads(row) for row in (out / "results.jsonl").read_text().splitlines()]
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*.png"))
    assert len(written) >= 2, written
    expected = screener.screen(report, [read_image(out / path) for path in written])
    assert line["images"] == [written[i] for i in expected.kept]
    kept_weights = [expected.images[i].weight for i in expected.kept]
    assert line["weights"] == [round(w / sum(kept_weights), 6) for w in kept_weights]
