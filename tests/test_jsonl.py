"""The one JSONL reader and line writer: line numbers counted over blank lines, bad lines named
by file and line, a torn tail visible as the one line without a newline."""

from __future__ import annotations

import json

import pytest

from data_zh.io import RecordError, json_line, jsonl_lines, parse_json_bytes, read_jsonl


def test_a_line_round_trips_with_chinese_readable(tmp_path):
    value = {"id": "a", "answer": "低回声结节", "n": [1, 2.5, None]}
    line = json_line(value)
    assert line.endswith("\n") and line.count("\n") == 1 and "低回声结节" in line
    path = tmp_path / "rows.jsonl"
    path.write_text(line + "\n  \n" + json_line([1]), encoding="utf-8")
    assert list(read_jsonl(path)) == [(1, value), (4, [1])]


def test_a_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"ok": 1}\n{"cut": \n')
    with pytest.raises(RecordError, match=r"rows\.jsonl:2: not valid JSON"):
        list(read_jsonl(path))
    with pytest.raises(RecordError, match="file not found"):
        list(read_jsonl(tmp_path / "absent.jsonl"))


def test_lines_are_bytes_so_one_bad_line_does_not_stop_the_rest(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n\xff\xfe\n{"b": 2}\n{"torn": ')
    lines = list(jsonl_lines(path))
    assert [number for number, _ in lines] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="not UTF-8"):
        parse_json_bytes(lines[1][1])
    assert parse_json_bytes(lines[2][1]) == {"b": 2}
    assert [line.endswith(b"\n") for _, line in lines] == [True, True, True, False]
    assert json.loads(lines[0][1]) == {"a": 1}
