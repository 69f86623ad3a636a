"""data_zh schema and JSONL / LLaVA round trips."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from data_zh import (
    DicomFrameRef,
    Labels,
    Media,
    OrientedBox,
    Reasoning,
    Record,
    RecordError,
    Turn,
    VideoRef,
    from_llava,
    read_llava,
    read_records,
    to_llava,
    write_llava,
    write_records,
)
from data_zh.schema import qa_turns


def _record(**overrides) -> Record:
    fields = dict(
        id="r1",
        source="test",
        licence="CC0",
        specialty="breast",
        modality="US",
        language="zh",
        task="closed_vqa",
        media=Media(root="/data", images=["a b (1).png", "c.png"]),
        conversations=qa_turns("两张图中是否可见病灶？", "是", n_images=2),
        answer_type="closed",
        labels=Labels(
            classes=["benign"], boxes=[OrientedBox(label="Liver", points=[(0, 0), (1, 0), (1, 1), (0, 1)])]
        ),
        reasoning=Reasoning(perception="可见低回声结节", conclusion="是"),
        split="train",
        extra={"question_type": "lesion"},
    )
    fields.update(overrides)
    return Record(**fields)


def test_question_and_answer_strip_placeholders():
    record = _record()
    assert record.question == "两张图中是否可见病灶？"
    assert record.answer == "是"
    assert record.media.all_paths()[0].as_posix() == "/data/a b (1).png"


def test_placeholder_count_must_match_media():
    with pytest.raises(ValidationError, match="2 image"):
        _record(conversations=qa_turns("问题", "是", n_images=1))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("task", "dance", "unknown task"), ("modality", "PET-MR", "unknown modality"), ("language", "fr", "zh")],
)
def test_unknown_values_are_rejected(field, value, message):
    with pytest.raises(ValidationError, match=message):
        _record(**{field: value})


def test_jsonl_round_trip_keeps_chinese_readable(tmp_path):
    records = [
        _record(),
        _record(
            id="r2",
            media=Media(video=VideoRef(path="v.mp4", frame_indices=[1, 5])),
            conversations=[
                Turn(role="user", content="视频里有什么？"),
                Turn(role="assistant", content="胆囊"),
            ],
            task="open_vqa",
            answer_type="open",
        ),
    ]
    path = tmp_path / "records.jsonl"
    assert write_records(records, path) == 2
    assert "两张图中是否可见病灶" in path.read_text(encoding="utf-8")
    assert read_records(path) == records


def test_read_records_names_line_record_and_field(tmp_path):
    good = _record().model_dump(mode="json")
    bad = {**good, "id": "broken", "answer_type": "maybe"}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"bad.jsonl:2: record 'broken': answer_type"):
        read_records(path)


def test_llava_round_trip_with_and_without_metadata(tmp_path):
    record = _record(
        media=Media(root="/d", images=["x.png"], dicom=[DicomFrameRef(path="us/a.dcm", frame=3)])
    )
    item = to_llava(record)
    assert item["images"] == ["x.png", "us/a.dcm#frame=3"]
    assert item["conversations"][0]["from"] == "human"
    assert from_llava(item) == record
    plain = to_llava(_record(), include_meta=False)
    back = from_llava(plain, source="busi", specialty="breast", modality="US", task="closed_vqa")
    assert back.media.images == ["a b (1).png", "c.png"]
    assert back.conversations == _record().conversations
    assert back.answer_type == "closed"
    path = tmp_path / "llava.jsonl"
    write_llava([record, _record(id="r3")], path)
    assert read_llava(path) == [record, _record(id="r3")]


def test_read_llava_accepts_json_list_and_skips_bad_items(tmp_path, caplog):
    items = [
        {
            "id": "1",
            "image": "a.png",
            "conversations": [{"from": "human", "value": "图中是什么？"}, {"from": "gpt", "value": "乳腺"}],
        },
        {"id": "2", "conversations": [{"from": "robot", "value": "?"}]},
    ]
    path = tmp_path / "llava.json"
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    records = read_llava(path)
    assert [r.id for r in records] == ["1"]
    assert records[0].conversations[0].content == "<image>\n图中是什么？"
    assert "llava.json:2" in caplog.text and "robot" in caplog.text


def test_schema_v2_preference_pairs_and_fact_lists_round_trip(tmp_path):
    from data_zh.io import read_records, write_records
    from data_zh.schema import SCHEMA_VERSION, Preference, Reasoning

    record = Record(
        id="pair-1",
        source="busi",
        licence="CC BY 4.0",
        specialty="breast",
        modality="US",
        language="zh",
        task="preference",
        media=Media(images=["a.png"]),
        conversations=[Turn(role="user", content="<image>\n是否可见病灶？")],
        reasoning=Reasoning(observations=["可见低回声结节"], deductions=["倾向良性"]),
        preference=Preference(
            chosen=Turn(role="assistant", content="是"),
            rejected=Turn(role="assistant", content="否"),
            judge="labels",
            reason="标签为良性病灶",
        ),
    )
    path = tmp_path / "pairs.jsonl"
    write_records([record], path)
    (loaded,) = read_records(path)
    assert loaded == record and loaded.schema_version == SCHEMA_VERSION == 2
    version_1 = record.model_dump(exclude={"preference", "reasoning", "schema_version"})
    assert Record.model_validate(version_1).schema_version == SCHEMA_VERSION  # old files still read
    with pytest.raises(ValidationError, match="schema_version 3 is not readable"):
        Record.model_validate({**version_1, "schema_version": 3})
    with pytest.raises(ValidationError, match="identical"):
        Preference(
            chosen=Turn(role="assistant", content="是"),
            rejected=Turn(role="assistant", content="是"),
            judge="j",
        )
