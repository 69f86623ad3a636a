"""BUS-BRA: records carry every fact of bus_data.csv, boxes agree with the masks, the committed split
is the official folds' (fold 4 = val, 1–3 = train and CV) and no patient lies in two splits or folds."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from data_zh.converters import convert
from data_zh.converters.busbra import BUSBRA_LICENCE, box_1000, pixel_box
from data_zh.licences import is_non_commercial, requires_citation, source_licences
from data_zh.masks import record_mask
from data_zh.splits import load_split, load_split_payload
from data_zh.splitting import busbra_split_payload, check_disjoint, make_busbra_split_payload, official_folds
from ultra.cli.main import app
from ultra.eval.datasets import load_eval_records


@pytest.fixture(scope="module")
def busbra(shared_data):
    root = shared_data / "busbra"
    if not root.is_dir():
        pytest.skip(f"BUS-BRA not in the shared data ({root})")
    return root


@pytest.fixture(scope="module")
def rows(busbra):
    with (busbra / "bus_data.csv").open(encoding="utf-8") as handle:
        return {row["ID"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def records(busbra):
    return convert("busbra", busbra)


def _patients(keys, rows):
    return {rows[key]["Case"] for key in keys}


def test_split_is_the_official_folds_and_shares_no_patient(busbra, rows):
    payload = load_split_payload("busbra")
    splits, folds = load_split("busbra"), official_folds()
    check_disjoint(splits)
    check_disjoint({str(index): keys for index, keys in enumerate(folds)})
    assert {name: len(keys) for name, keys in splits.items()} == {"train": 1127, "val": 365}
    assert [len(fold) for fold in folds] == [376, 385, 366]
    assert sorted(sum(folds, [])) == splits["train"] and sorted(sum(splits.values(), [])) == sorted(rows)
    with (busbra / "5-fold-cv.csv").open(encoding="utf-8") as handle:
        k_fold = {row["ID"]: int(row["kFold"]) for row in csv.DictReader(handle)}
    assert {k_fold[key] for key in splits["val"]} == {4}
    assert [{k_fold[key] for key in fold} for fold in folds] == [{1}, {2}, {3}]
    assert not _patients(splits["train"], rows) & _patients(splits["val"], rows)
    for index, fold in enumerate(folds):
        for other in folds[index + 1 :]:
            assert not _patients(fold, rows) & _patients(other, rows)
    assert len(_patients(splits["train"], rows)) + len(_patients(splits["val"], rows)) == 852
    split_of = {key: name for name, keys in splits.items() for key in keys}
    dual = [key for key in rows if key.endswith("-l")]
    assert len(dual) == 640
    for key in dual:  # both halves of one dual-view screen: one lesion, one split
        assert split_of[key.removesuffix("-l") + "-r"] == split_of[key]
    assert make_busbra_split_payload(busbra) == payload


def test_a_patient_in_two_folds_is_refused():
    with pytest.raises(ValueError, match="patient 7 lies in folds 1 and 4"):
        busbra_split_payload({"bus_0007-l": 1, "bus_0007-r": 4}, {"bus_0007-l": "7", "bus_0007-r": "7"})
    with pytest.raises(ValueError, match=r"fold\(s\) \[5\]"):
        busbra_split_payload({"bus_0008-s": 5}, {"bus_0008-s": "8"})


def test_records_carry_every_fact_of_their_row(records, rows):
    assert len(records) == len(rows) == 1492 and len({r.id for r in records}) == 1492
    assert Counter(r.split for r in records) == {"train": 1127, "val": 365}
    assert Counter(r.extra["pathology"] for r in records) == {"benign": 1006, "malignant": 486}
    assert len({r.extra["scanner"] for r in records}) == 4
    assert {r.extra["birads"] for r in records} == {2, 3, 4, 5}
    zh = {"benign": "良性", "malignant": "恶性"}
    for record in records:
        row, facts = rows[record.extra["image_id"]], record.extra
        assert record.labels.classes == [row["Pathology"]] and record.answer == zh[row["Pathology"]]
        assert [facts["histology"], facts["scanner"]] == [row["Histology"], row["Device"]]
        assert facts["birads"] == int(row["BIRADS"])
        assert facts["patient"] == row["Case"] and facts["view"] == row["ID"][-1] == row["Side"][0]
        assert facts["bbox_csv"] == json.loads(row["BBOX"])
        assert [facts["width"], facts["height"]] == [int(row["Width"]), int(row["Height"])]
        assert all(0 <= value <= 1000 for value in facts["box_1000"])
        assert (facts["fold"] == 4) == (record.split == "val")
        assert record.licence == BUSBRA_LICENCE and record.media.all_paths()[0].is_file()


def test_boxes_are_the_masks_extent_in_pixels_and_in_the_models_thousandths(records):
    for record in records[::150]:  # ten images of every scanner's sizes
        mask = record_mask(record)
        with Image.open(record.media.all_paths()[0]) as image:
            assert image.size == mask.shape[::-1] == (record.extra["width"], record.extra["height"])
        rows_, columns = np.nonzero(mask)
        extent = [columns.min(), rows_.min(), columns.max() + 1, rows_.max() + 1]
        assert record.extra["box_px"] == extent, record.id
        corners = np.array(record.labels.boxes[0].points) * mask.shape[::-1]
        assert corners.min(axis=0).tolist() == pytest.approx(extent[:2])
        assert corners.max(axis=0).tolist() == pytest.approx(extent[2:])
    assert pixel_box([91, 24, 103, 79]) == [90, 23, 194, 103]
    assert box_1000([90, 23, 194, 103], 274, 353) == [328, 65, 708, 292]


def test_licence_allows_shipping_and_asks_for_the_citation(records):
    assert not is_non_commercial(BUSBRA_LICENCE) and requires_citation(BUSBRA_LICENCE)
    assert "Gómez-Flores" in BUSBRA_LICENCE and "Medical Physics" in BUSBRA_LICENCE
    (row,) = source_licences(records[:5])
    assert row == {
        "source": "busbra",
        "licence": BUSBRA_LICENCE,
        "records": 5,
        "non_commercial": False,
        "citation_required": True,
    }


def test_eval_set_asks_closed_questions_on_val(busbra, rows):
    records = load_eval_records("busbra", busbra)
    assert {r.split for r in records} == {"val"} and len(records) == 3 * 365
    kinds = Counter((r.extra["question_type"], r.answer) for r in records)
    val = load_split("busbra")["val"]
    malignant = sum(rows[key]["Pathology"] == "malignant" for key in val)
    assert kinds == {
        ("site", "乳腺"): 365,
        ("lesion", "是"): 365,
        ("malignancy", "恶性"): malignant,
        ("malignancy", "良性"): 365 - malignant,
    }
    heldout = load_eval_records("busbra_heldout", busbra)
    assert [r.answer for r in heldout] == [r.answer for r in records]
    assert {r.question for r in heldout} != {r.question for r in records}
    assert {r.extra["scanner"] for r in records} <= {row["Device"] for row in rows.values()}


def test_cli_converts_and_scores_busbra(busbra, tmp_path):
    runner = CliRunner()
    out = tmp_path / "busbra.jsonl"
    result = runner.invoke(app, ["data", "convert", "busbra", str(busbra), "-o", str(out)])
    assert result.exit_code == 0 and "wrote 1492 record(s)" in result.output, result.output
    command = ["eval", "baseline", "-d", "busbra", "--root", str(busbra), "--out", str(tmp_path)]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["overall"]["n"] == 3 * 365
