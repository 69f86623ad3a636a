"""Every data source in ``data_zh.sources`` loads records that hold to the schema (timm's habit: one
test over the whole registry), and the names shipped configs use still mean what they meant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from data_zh import write_records
from data_zh.converters import CONVERTERS, convert
from data_zh.schema import Media, Record, qa_turns
from data_zh.sources import EVALUATION_NAMES, SOURCES, TRAINING_NAMES, load_records, resolve_source
from fusion.registry import UnknownEntryError
from tests.conftest import shared_data_root


def _png(path: Path, colour: str = "red") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def _records_file(tmp: Path) -> Path:
    _png(tmp / "a.png")
    record = Record(
        id="r1",
        source="mine",
        licence="CC0",
        specialty="breast",
        modality="US",
        language="zh",
        task="closed_vqa",
        media=Media(root=str(tmp), images=["a.png"]),
        conversations=qa_turns("是否可见病灶？", "是"),
        split="train",
    )
    write_records([record], tmp / "records.jsonl")
    return tmp / "records.jsonl"


def _llava_file(tmp: Path) -> Path:
    _png(tmp / "x.png")
    item = {
        "id": "q1",
        "image": "x.png",
        "conversations": [{"from": "human", "value": "<image>\n图中是什么？"}, {"from": "gpt", "value": "乳腺"}],
    }
    (tmp / "chat.jsonl").write_text(json.dumps(item, ensure_ascii=False) + "\n", encoding="utf-8")
    return tmp / "chat.jsonl"


def _pathvqa_folder(tmp: Path) -> Path:
    (tmp / "qas/train").mkdir(parents=True)
    _png(tmp / "images/train/train_0001.png")
    items = [{"image": "train_0001", "question": "Is this a gland?", "answer": "yes"}]
    (tmp / "qas/train/train_qa.json").write_text(json.dumps(items), encoding="utf-8")
    return tmp


# Sources the shared data does not hold: a tiny root of their own (None: the source needs no root).
FIXTURES = {
    "records": _records_file,
    "llava": _llava_file,
    "pathvqa": _pathvqa_folder,
    "phantom": lambda tmp: tmp / "phantoms",
    "busi_question_types": lambda tmp: None,
}
# Options a source cannot load without, kept small so the whole file runs in seconds.
OPTIONS = {
    "phantom": lambda tmp: {"count": 3, "size": 32},
    "report_benchmark": lambda tmp: {"out": tmp / "benchmark", "n_reports": 2},
}


def _root_of(name: str, tmp: Path) -> Path | None:
    spec = SOURCES[name]
    if spec.folder is not None:
        root = shared_data_root() / spec.folder
        if not root.exists():
            pytest.skip(f"{name}: shared data {root} not found (set ULTRA_SHARED_DATA)")
        return root
    assert name in FIXTURES, f"{name}: neither shared data (folder) nor a fixture in this test"
    return FIXTURES[name](tmp)


@pytest.mark.parametrize("name", SOURCES.names())
def test_every_source_loads_records_that_validate(name, tmp_path):
    spec = SOURCES[name]
    assert spec.description and "\n" not in spec.description
    root = _root_of(name, tmp_path)
    options = OPTIONS.get(name, lambda tmp: {})(tmp_path)
    assert set(options) <= set(spec.options)
    records = load_records(name, root, **options)
    assert records, f"{name}: no records"
    for record in records[:200]:
        assert Record.model_validate(record.model_dump(mode="json")) == record
    if spec.default_split is not None:
        assert {record.split for record in records} == {spec.default_split}


def test_a_split_keeps_only_its_records_and_all_keeps_every_split(tmp_path):
    path = _records_file(tmp_path)
    assert [r.id for r in load_records("records", path, split="train")] == ["r1"]
    assert load_records("records", path, split="val") == []
    assert [r.id for r in load_records("records", path, split="all")] == ["r1"]


def test_errors_name_the_source_and_what_it_needs(tmp_path):
    known = "known: busbra_labels, busbra_vqa, busi_instructions"
    with pytest.raises(UnknownEntryError, match=f"unknown data source 'imagenet'; {known}"):
        load_records("imagenet", tmp_path)
    with pytest.raises(ValueError, match=r"busi_vqa: pass a BUSI-layout folder \(labels.csv, images/\) as root"):
        load_records("busi_vqa")
    with pytest.raises(ValueError, match=r"nowhere: not found \(busi_vqa reads a BUSI-layout folder"):
        load_records("busi_vqa", tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"busi_vqa: unknown option\(s\) phrasings \(it takes: wordings\)"):
        load_records("busi_vqa", tmp_path, phrasings=2)


def test_old_names_resolve_to_one_entry_each():
    for aliases in (TRAINING_NAMES, EVALUATION_NAMES):
        for name in aliases:
            ref = resolve_source(name, SOURCES, aliases)
            assert ref.source in SOURCES and set(ref.options) <= set(SOURCES[ref.source].options)
    assert resolve_source("busi", SOURCES, TRAINING_NAMES).source == "busi_instructions"
    assert resolve_source("busi", SOURCES, EVALUATION_NAMES).source == "busi_vqa"
    assert resolve_source("slake", SOURCES, TRAINING_NAMES).source == "slake"


@pytest.mark.parametrize("name", CONVERTERS.names())
def test_every_converter_states_its_layout_and_refuses_unknown_options(name, tmp_path):
    converter = CONVERTERS[name]
    assert converter.layout
    with pytest.raises(ValueError, match=f"{name} converter: unknown option"):
        convert(name, tmp_path, colour="red")
