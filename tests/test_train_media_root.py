"""Training reads media only inside each source's media root, unless the source allows it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_zh.io import write_records
from data_zh.schema import Media, Record, qa_turns
from ultra.train.config import DataSource
from ultra.train.data import DataSourceError, LoadFailure, RecordDataset, load_source


def _records_file(tmp_path, relative: str):
    root = tmp_path / "dataset"
    root.mkdir()
    outside = tmp_path / "elsewhere.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(outside)
    record = Record(
        id="r1",
        source="test",
        licence="test",
        specialty="breast",
        modality="US",
        language="zh",
        task="closed_vqa",
        media=Media(root=str(root), images=[relative]),
        conversations=qa_turns("是否可见病灶？", "是"),
    )
    path = tmp_path / "records.jsonl"
    write_records([record], path)
    return path


def test_a_path_leaving_the_root_is_refused_naming_record_and_path(tmp_path):
    path = _records_file(tmp_path, "../elsewhere.png")
    with pytest.raises(
        DataSourceError, match=r"record r1: media path '\.\./elsewhere\.png' refused: climbs out"
    ):
        load_source(DataSource(kind="records", path=str(path)))


def test_allowed_outside_root_records_load_and_encode(tmp_path, tiny_model):
    path = _records_file(tmp_path, "../elsewhere.png")
    records = load_source(DataSource(kind="records", path=str(path), allow_outside_root=True))
    example = RecordDataset(records, tiny_model[1])[0]
    assert not isinstance(example, LoadFailure) and example["pixel_values"] is not None
