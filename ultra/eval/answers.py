"""Answers files: JSONL, one ``{"id", "question", "answer", ...}`` per line, appended as written.

Appending line by line is what makes generation resumable: a killed run leaves every finished
answer on disk, and a rerun skips their ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from data_zh.io import json_line, jsonl_lines, parse_json_bytes


def read_answers(path: str | Path) -> list[dict]:
    """Every answer in a file; a torn last line (killed mid-write: no newline after it) is ignored.

    Any other line that is not UTF-8 JSON, or lacks an id or an answer, raises ValueError naming
    the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: answers file not found")
    answers = []
    for number, line in jsonl_lines(path):
        try:
            row = parse_json_bytes(line)
        except ValueError as error:
            if not line.endswith(b"\n"):  # only the last line can lack one: a torn tail
                break
            raise ValueError(f"{path}:{number}: {error}") from None
        if not isinstance(row, dict) or "id" not in row and "question_id" not in row:
            raise ValueError(f"{path}:{number}: each line must be an object with an 'id'")
        if "answer" not in row and "text" not in row:
            raise ValueError(
                f"{path}:{number}: no 'answer' (or LLaVA's 'text') for id {row.get('id', row.get('question_id'))!r}"
            )
        answers.append(row)
    return answers


def answered_ids(path: str | Path) -> set[str]:
    """Ids already answered in a file (empty when it does not exist yet)."""
    path = Path(path)
    if not path.is_file():
        return set()
    return {str(row.get("id", row.get("question_id"))) for row in read_answers(path)}


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line left half-written by a killed run, so appending starts on a fresh line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def append_answers(rows: Iterable[dict], path: str | Path) -> int:
    """Append answers (UTF-8, Chinese readable) and flush; returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _drop_torn_tail(path)
    count = 0
    with path.open("a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json_line(row))
            count += 1
        handle.flush()
    return count


def write_answers(rows: Iterable[dict], path: str | Path) -> int:
    """Write a fresh answers file (replacing any old one)."""
    path = Path(path)
    if path.exists():
        path.unlink()
    return append_answers(rows, path)
