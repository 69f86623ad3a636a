"""``ultra eval score`` / ``ultra eval baseline`` end to end on the real SLAKE files (no model)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ultra.cli.main import app
from ultra.eval.answers import read_answers, write_answers
from ultra.eval.datasets import load_eval_records
from ultra.eval.llava_med import RULE_TITLES
from ultra.eval.report import rounded


def test_score_command_writes_the_report(shared_data, tmp_path):
    records = load_eval_records("slake", shared_data / "slake", "test")
    answers = [{"id": r.id, "answer": r.answer if r.language == "en" else "是"} for r in records]
    write_answers(answers, tmp_path / "answers.jsonl")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ultra",
            "eval",
            "score",
            str(tmp_path / "answers.jsonl"),
            "-d",
            "slake",
            "--root",
            str(shared_data / "slake"),
            "--out",
            str(tmp_path / "report"),
            "--compat",
            "llava-med",
            "--train-split",
            "train",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text(encoding="utf-8"))
    by_language = metrics["by"]["language"]
    assert by_language["en"]["closed_accuracy"] == 100.0
    assert by_language["zh"]["closed_accuracy"] < 100.0
    assert "majority per question type" in metrics["baselines"]
    assert "llava_med" in metrics
    assert (tmp_path / "report" / "accuracy.png").stat().st_size > 1000
    # the printed table: one line per row within 80 columns, numbers rounded to one decimal
    lines = result.stdout.splitlines()
    table = lines[: next(index for index, line in enumerate(lines) if line.startswith("- "))]
    assert max(map(len, table)) <= 80, result.stdout
    for language, summary in by_language.items():
        row = f"{language} {summary['n']} {summary['closed_accuracy']:.1f} {summary['closed_balanced_accuracy']:.1f}"
        assert row in [" ".join(line.split()[:4]) for line in lines], (row, result.stdout)
    assert not re.search(r"\d\.\d{3,}", result.stdout), result.stdout
    assert f"- {RULE_TITLES['llava-med']}: yes/no accuracy" in result.stdout


def test_baseline_command_and_bad_dataset(shared_data, tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["eval", "baseline", "-d", "vqa_rad", "--root", str(shared_data / "vqa_rad"), "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    assert len(read_answers(tmp_path / "answers.jsonl")) == len(
        load_eval_records("vqa_rad", shared_data / "vqa_rad", "test")
    )
    bad = runner.invoke(
        app, ["eval", "score", str(tmp_path / "answers.jsonl"), "-d", "nope", "--out", str(tmp_path)]
    )
    assert bad.exit_code != 0 and "unknown dataset" in bad.output


def test_generate_command_with_a_records_file_resumes(shared_data, tmp_path):
    from data_zh import write_records
    from data_zh.builders import build_busi_vqa

    records = build_busi_vqa(shared_data / "busi", "val")[:3]
    write_records(records, tmp_path / "busi.jsonl")
    base = ["eval", "generate", "-m", "debug-tiny", "-d", str(tmp_path / "busi.jsonl"), "--split", "all"]
    base += ["-o", str(tmp_path / "answers.jsonl"), "--max-new-tokens", "2"]
    runner = CliRunner()
    refused = runner.invoke(app, base)
    assert refused.exit_code != 0 and "--allow-untrained" in refused.output
    first = runner.invoke(app, [*base, "--allow-untrained", "--limit", "2"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, [*base, "--allow-untrained"])
    assert second.exit_code == 0, second.output
    assert "1 answered now, 2 already there" in " ".join(second.output.split())
    assert [row["id"] for row in read_answers(tmp_path / "answers.jsonl")] == [r.id for r in records]


def test_rounded_rounds_every_float_for_printing():
    metrics = {"closed_accuracy": 82.42424242424242, "n": 33, "ci95": [66.21212, 74.1], "label": "x"}
    assert rounded(metrics) == {"closed_accuracy": 82.42, "n": 33, "ci95": [66.21, 74.1], "label": "x"}


def test_eval_names_read_the_registry_sources(shared_data):
    busi = load_eval_records("busi", shared_data / "busi")
    assert {r.split for r in busi} == {"val"} and {r.extra["wordings"] for r in busi} == {"train"}
    assert [r.id for r in busi] == [r.id for r in load_eval_records("busi_vqa", shared_data / "busi", "val")]
    clips = load_eval_records("laparoscopy_video", shared_data / "laparoscopy_frames", "all")
    assert {r.split for r in clips} == {"train", "val"}
    names = "busbra, busbra_heldout, busbra_labels, busbra_vqa, busi, busi_heldout"
    with pytest.raises(ValueError, match=f"unknown dataset 'nope': use one of {names}"):
        load_eval_records("nope", shared_data)
    with pytest.raises(ValueError, match=r"busi_vqa: pass a BUSI-layout folder \(labels.csv, images/\) as root"):
        load_eval_records("busi_heldout")
