"""Check a JSONL of Records: every problem names the line, the record and the field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from data_zh.schema import Record


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one record."""

    line: int
    record_id: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: record {self.record_id!r}: {self.field}: {self.message}"


@dataclass(frozen=True)
class ValidationReport:
    """How many records were read, and what is wrong with them."""

    path: Path
    records: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _media_problems(record: Record, line: int, media_root: Path | None, default_root: Path) -> list[Problem]:
    root = media_root or (Path(record.media.root) if record.media.root else default_root)
    fields = [f"media.images[{i}]" for i in range(len(record.media.images))]
    fields += [f"media.dicom[{i}].path" for i in range(len(record.media.dicom))]
    fields += ["media.video.path"] if record.media.video else []
    return [
        Problem(line, record.id, field, f"file not found: {path}")
        for field, path in zip(fields, record.media.all_paths(root), strict=True)
        if not path.exists()
    ]


def validate_records_file(
    path: str | Path, media_root: str | Path | None = None, check_media: bool = True
) -> ValidationReport:
    """Validate every line (one bad line never hides the others), duplicate ids, and media on disk.

    Media paths resolve against ``media_root`` when given, else each record's ``media.root``,
    else the JSONL file's folder.
    """
    path = Path(path)
    if not path.is_file():
        return ValidationReport(path, 0, (Problem(0, "-", "<file>", f"{path}: file not found"),))
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    count = 0
    override = Path(media_root) if media_root is not None else None
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            count += 1
            try:
                data = json.loads(text)
            except json.JSONDecodeError as error:
                problems.append(Problem(line, "?", "<json>", f"not valid JSON ({error.msg})"))
                continue
            record_id = str(data.get("id", "?")) if isinstance(data, dict) else "?"
            try:
                record = Record.model_validate(data)
            except ValidationError as error:
                for item in error.errors():
                    field = ".".join(str(part) for part in item["loc"])
                    if not field:  # record-level checks: name the field they are about
                        field = "conversations" if "placeholder" in item["msg"] else "<record>"
                    problems.append(Problem(line, record_id, field, item["msg"]))
                continue
            if record.id in seen:
                problems.append(Problem(line, record.id, "id", f"duplicate of line {seen[record.id]}"))
            seen.setdefault(record.id, line)
            if check_media:
                problems.extend(_media_problems(record, line, override, path.parent))
    return ValidationReport(path, count, tuple(problems))
