"""``ultra data convert | build | validate | stats`` and the library functions under them."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from data_zh import read_llava, read_records
from data_zh.converters import detect_sources
from data_zh.fonts import BUNDLED_FAMILY, SYSTEM_CJK_FAMILIES, cjk_font_family
from data_zh.stats import plot_stats, record_stats
from data_zh.validate import validate_records_file
from ultra.cli.main import app

runner = CliRunner()


def busi_rows(shared_data) -> int:
    """Images in the shared BUSI folder's labels.csv (the converter gives one record each)."""
    return len((shared_data / "busi" / "labels.csv").read_text(encoding="utf-8").splitlines()) - 1


def test_convert_validate_stats_on_busi(shared_data, tmp_path):
    out = tmp_path / "busi.jsonl"
    result = runner.invoke(app, ["data", "convert", "busi", str(shared_data / "busi"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = busi_rows(shared_data)
    assert len(read_records(out)) == rows
    result = runner.invoke(app, ["data", "validate", str(out)])
    assert result.exit_code == 0 and f"{rows} record(s), no problems" in result.output
    chart = tmp_path / "stats.png"
    result = runner.invoke(app, ["data", "stats", str(out), "--chart", str(chart)])
    assert result.exit_code == 0, result.output
    assert "selftrain_pool" in result.output and "361" in result.output
    assert Image.open(chart).format == "PNG"


def test_build_and_convert_to_llava(shared_data, tmp_path):
    out = tmp_path / "vqa.jsonl"
    result = runner.invoke(
        app,
        ["data", "build", "busi_vqa", str(shared_data / "busi"), "--split", "val", "-o", str(out), "--llava"],
    )
    assert result.exit_code == 0, result.output
    records = read_llava(out)
    # site, lesion and 良恶性 on each of the 164 val images (24 normal ones: 未见明确病灶)
    assert len(records) == 164 + 164 + 164 and all(r.split == "val" for r in records)
    result = runner.invoke(app, ["data", "build", "nonsense", str(shared_data / "busi"), "-o", str(out)])
    assert result.exit_code == 2 and "unknown data source 'nonsense'; known: busbra_labels, busbra_vqa" in result.output


def test_sources_lists_every_source_and_converter_and_build_takes_any(shared_data, tmp_path):
    from data_zh.converters import CONVERTERS
    from data_zh.sources import SOURCES

    result = runner.invoke(app, ["data", "sources"])
    assert result.exit_code == 0, result.output
    listed = {line.split("│")[1].strip() for line in result.output.splitlines() if line.count("│") >= 3}
    assert set(SOURCES) | set(CONVERTERS) | {"busi_heldout"} <= listed
    assert "busi_vqa, wordings=heldout" in result.output
    out = tmp_path / "dicom.jsonl"
    result = runner.invoke(app, ["data", "build", "dicom_instructions", str(shared_data / "dicom"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert {r.split for r in read_records(out)} == {"train"}


def test_convert_options_are_checked_per_source(tmp_path):
    result = runner.invoke(
        app,
        [
            "data",
            "convert",
            "busi",
            str(tmp_path),
            "-o",
            str(tmp_path / "x.jsonl"),
            "--image-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "--image-dir applies to pathvqa only" in result.output


def test_convert_reports_a_bad_root(tmp_path):
    result = runner.invoke(
        app, ["data", "convert", "busi", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.jsonl")]
    )
    assert result.exit_code == 2 and "nowhere: not a folder" in result.output


def test_validate_names_record_field_and_missing_media(shared_data, tmp_path):
    good = runner.invoke(
        app, ["data", "convert", "busi", str(shared_data / "busi"), "-o", str(tmp_path / "b.jsonl")]
    )
    assert good.exit_code == 0
    lines = (tmp_path / "b.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    broken = json.loads(lines[1])
    broken["task"] = "dance"
    moved = json.loads(lines[2])
    moved["media"]["images"] = ["images/benign/不存在 (1).png"]
    unplaced = json.loads(lines[0])
    unplaced["id"] = "no-placeholder"
    unplaced["conversations"][0]["content"] = "是否可见病灶？"
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join([lines[0], json.dumps(broken), json.dumps(moved), lines[0], "{oops", json.dumps(unplaced)])
        + "\n",
        encoding="utf-8",
    )
    report = validate_records_file(path)
    found = {(p.line, p.field) for p in report.problems}
    assert found == {(2, "task"), (3, "media.images[0]"), (4, "id"), (5, "<json>"), (6, "conversations")}
    assert report.records == 6 and not report.ok
    assert "不存在 (1).png" in str(next(p for p in report.problems if p.line == 3))
    result = runner.invoke(app, ["data", "validate", str(path)])
    assert result.exit_code == 1
    assert f"record '{broken['id']}': task" in result.output and "5 problem(s)" in result.output
    assert validate_records_file(path, check_media=False).problems[1].field == "id"
    elsewhere = validate_records_file(tmp_path / "b.jsonl", media_root=tmp_path)
    assert len(elsewhere.problems) == busi_rows(shared_data)


def test_stats_counts_and_cjk_chart(shared_data, tmp_path):
    from data_zh import convert

    records = convert("busi", shared_data / "busi") + convert(
        "promptcblue", shared_data / "promptcblue_toy_zh"
    )
    counts = record_stats(records)
    rows = busi_rows(shared_data)
    assert counts["source"] == {"busi": rows, "promptcblue": 240}
    assert counts["modality"] == {"US": rows, "text": 240}
    assert counts["split"]["val"] == 164 + 80
    path = plot_stats(counts, tmp_path / "chart.png")
    image = Image.open(path)
    assert image.format == "PNG" and image.size[0] > 600
    assert cjk_font_family() in {*SYSTEM_CJK_FAMILIES, BUNDLED_FAMILY}


def test_stats_accepts_a_source_folder_and_names_the_command_for_an_unknown_one(shared_data, tmp_path):
    result = runner.invoke(app, ["data", "stats", str(shared_data / "busi")])
    assert result.exit_code == 0, result.output
    assert "busi layout, converted on the fly" in result.output
    assert f"{busi_rows(shared_data)} record(s)" in result.output
    (tmp_path / "notes.txt").write_text("not a dataset", encoding="utf-8")
    result = runner.invoke(app, ["data", "stats", str(tmp_path)])
    assert result.exit_code == 2
    assert "file not found" not in result.output
    assert f"ultra data convert SOURCE {tmp_path} -o records.jsonl" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("folder", "source"),
    [
        ("busi", "busi"),
        ("slake", "slake"),
        ("vqa_rad", "vqa_rad"),
        ("laparoscopy_frames", "laparoscopy"),
        ("promptcblue_toy_zh", "promptcblue"),
        ("dicom", "dicom"),
    ],
)
def test_detect_sources_recognises_each_shared_layout(shared_data, folder, source):
    assert detect_sources(shared_data / folder) == [source]
