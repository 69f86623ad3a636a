"""Every surface answers through the one front door: ``ultra ask`` and ``ultra eval generate`` give
the answer ``ultra dicom --question`` gave, on the PNG that ``ultra dicom`` wrote."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from data_zh.io import write_records
from data_zh.schema import Media, Record, qa_turns
from ultra import RESEARCH_NOTICE
from ultra.cli.main import app
from ultra.resources import embedded_model_dir

QUESTION = "是否可见病灶？"

pytestmark = pytest.mark.skipif(
    not (embedded_model_dir() / "model.safetensors").is_file(),
    reason="the embedded model is not in this checkout",
)


def test_ask_and_eval_generate_answer_like_ultra_dicom(shared_data, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(shared_data / "dicom" / "us" / "US1_UNCR.dcm", source / "study.dcm")
    out = tmp_path / "out"
    runner = CliRunner()
    dicom = runner.invoke(app, ["dicom", str(source), str(out), "--question", QUESTION, "--workers", "1"])
    assert dicom.exit_code == 0, dicom.output
    (study,) = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    png, dicom_answer = out / study["images"][0], study["answers"][0]
    assert png.is_file() and dicom_answer

    ask = runner.invoke(app, ["ask", "--image", str(png), "-q", QUESTION, "--max-new-tokens", "32"])
    assert ask.exit_code == 0, ask.output
    assert ask.stdout.splitlines()[0] == dicom_answer
    assert RESEARCH_NOTICE in ask.stdout

    record = Record(
        id="study-1",
        source="dicom",
        licence="test",
        specialty="breast",
        modality="US",
        language="zh",
        task="closed_vqa",
        media=Media(images=[study["images"][0]], root=str(out)),
        conversations=qa_turns(QUESTION, "是"),
        split="test",
    )
    records = tmp_path / "records.jsonl"
    write_records([record], records)
    answers = tmp_path / "answers.jsonl"
    generate = runner.invoke(
        app, ["eval", "generate", "-d", str(records), "-o", str(answers), "--max-new-tokens", "32"]
    )
    assert generate.exit_code == 0, generate.output
    (row,) = [json.loads(line) for line in answers.read_text(encoding="utf-8").splitlines()]
    assert row["answer"] == dicom_answer
