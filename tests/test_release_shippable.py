"""The licence gate: shippable weights never learn from non-commercial data; the card lists sources."""

from __future__ import annotations

import json

import pytest

from data_zh import convert, load_split, write_records
from data_zh.builders import build_busi_instructions, build_question_type_instructions
from data_zh.licences import is_non_commercial, source_licences
from ultra.release.embedded import install
from ultra.release.model_card import CardFacts, render_model_card
from ultra.release.shippable import LicenceError, check_shippable, read_training_data, sources_markdown
from ultra.train import DataSource, TrainConfig
from ultra.train.runner import Trainer


def test_licence_texts_of_every_converter_are_classified(shared_data):
    laparoscopy = convert("laparoscopy", shared_data / "laparoscopy_frames")
    promptcblue = convert("promptcblue", shared_data / "promptcblue_toy_zh")
    slake = convert("slake", shared_data / "slake")
    busi = build_busi_instructions(shared_data / "busi", "train")
    assert all(is_non_commercial(r.licence) for r in laparoscopy[:3] + promptcblue[:3])
    assert not any(is_non_commercial(r.licence) for r in slake[:3] + busi[:3])
    assert not any(is_non_commercial(r.licence) for r in build_question_type_instructions()[:3])
    rows = source_licences(busi + promptcblue)
    assert [(row["source"], row["non_commercial"]) for row in rows] == [
        ("busi", False),
        ("promptcblue", True),
    ]


def _config(shared_data, tmp_path, extra: dict[str, DataSource]) -> TrainConfig:
    data = {
        "busi": DataSource(kind="busi", path=str(shared_data / "busi"), split="train"),
        "qtypes": DataSource(kind="busi_question_types"),
        **extra,
    }
    return TrainConfig(
        model={"name_or_path": "debug-tiny"},
        data=data,
        stages=[{"name": "llm", "train": ["model.language_model.*"], "sources": list(data)}],
        output_dir=str(tmp_path / "run"),
    )


def test_trainer_records_the_provenance_and_the_gate_refuses_non_commercial(shared_data, tmp_path):
    clean = Trainer(_config(shared_data, tmp_path, {})).training_data()
    assert {row["data_source"] for row in clean} == {"busi", "qtypes"}
    check_shippable(clean)  # BUSI and ultra's own question-type text may ship
    table = sources_markdown(clean)
    records = 5 * len(load_split("busi")["train"])  # five instruction records per BUSI train image
    assert f"| busi | busi | {records} | CC BY 4.0" in table and "busi-question-types" in table

    write_records(convert("laparoscopy", shared_data / "laparoscopy_frames")[:4], tmp_path / "frames.jsonl")
    write_records(convert("promptcblue", shared_data / "promptcblue_toy_zh")[:4], tmp_path / "cblue.jsonl")
    extra = {
        "frames": DataSource(kind="records", path=str(tmp_path / "frames.jsonl")),
        "cblue": DataSource(kind="records", path=str(tmp_path / "cblue.jsonl")),
    }
    rows = Trainer(_config(shared_data, tmp_path, extra)).training_data()
    with pytest.raises(LicenceError) as refused:
        check_shippable(rows)
    message = str(refused.value)
    assert "frames (laparoscopy" in message and "cblue (promptcblue" in message and "busi (" not in message


def test_install_refuses_before_copying_anything(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    destination = tmp_path / "weights"
    with pytest.raises(LicenceError, match="cannot read the run's summary"):
        install(run, destination)
    (run / "summary.json").write_text(json.dumps({"stages": []}), encoding="utf-8")
    with pytest.raises(LicenceError, match="no training_data record"):
        install(run, destination)
    rows = [
        {"data_source": "busi", "source": "busi", "licence": "CC BY 4.0", "records": 10},
        {"data_source": "frames", "source": "laparoscopy", "licence": "CC BY-NC-SA 4.0", "records": 4},
    ]
    (run / "summary.json").write_text(json.dumps({"stages": [], "training_data": rows}), encoding="utf-8")
    assert read_training_data(run) == rows
    with pytest.raises(LicenceError, match=r"frames \(laparoscopy, 4 records: CC BY-NC-SA 4.0\)"):
        install(run, destination)
    assert not destination.exists()


def test_model_card_lists_every_source_used():
    from test_release_scorecard import _hand_card

    rows = [
        {"data_source": "busi", "source": "busi", "licence": "CC BY 4.0", "records": 10},
        {"data_source": "slake_zh", "source": "slake", "licence": "CC BY 4.0 (SLAKE)", "records": 7},
    ]
    text = render_model_card(
        CardFacts({"stages": [], "wall_s": 1.0, "training_data": rows}, _hand_card(), "cmd")
    )
    assert sources_markdown(rows) in text and "| slake_zh | slake | 7 | CC BY 4.0 (SLAKE) |" in text
