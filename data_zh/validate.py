"""Check a JSONL of Records: every problem names the line, the record and the field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from data_zh.io import jsonl_lines, parse_json_bytes
from data_zh.schema import Record, outside_root_reason


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


def _media_problems(
    record: Record, line: int, media_root: Path | None, default_root: Path, allow_outside_root: bool
) -> list[Problem]:
    root = media_root or (Path(record.media.root) if record.media.root else default_root)
    fields = [f"media.images[{i}]" for i in range(len(record.media.images))]
    fields += [f"media.dicom[{i}].path" for i in range(len(record.media.dicom))]
    relatives = [*record.media.images, *(ref.path for ref in record.media.dicom)]
    if record.media.video:
        fields.append("media.video.path")
        relatives.append(record.media.video.path)
    problems = []
    for field, relative in zip(fields, relatives, strict=True):
        reason = None if allow_outside_root else outside_root_reason(relative, root)
        if reason is not None:
            problems.append(Problem(line, record.id, field, f"{relative}: refused: {reason}"))
        elif not record.media.resolve(relative, root).exists():
            problems.append(
                Problem(line, record.id, field, f"file not found: {record.media.resolve(relative, root)}")
            )
    return problems


def validate_records_file(
    path: str | Path,
    media_root: str | Path | None = None,
    check_media: bool = True,
    *,
    allow_outside_root: bool = False,
) -> ValidationReport:
    """Validate every line (one bad line never hides the others), duplicate ids, and media on disk.

    Media paths resolve against ``media_root`` when given, else each record's ``media.root``,
    else the JSONL file's folder; a path that leaves that root is a problem unless
    ``allow_outside_root`` (see ``data_zh.schema.outside_root_reason``). Lines that are not UTF-8,
    not JSON or nested too deeply are problems of their line, like any other.
    """
    path = Path(path)
    if not path.is_file():
        return ValidationReport(path, 0, (Problem(0, "-", "<file>", f"{path}: file not found"),))
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    count = 0
    override = Path(media_root) if media_root is not None else None
    for line, text in jsonl_lines(path):
        count += 1
        try:
            data = parse_json_bytes(text)
        except ValueError as error:
            problems.append(Problem(line, "?", "<json>", str(error)))
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
            problems.extend(_media_problems(record, line, override, path.parent, allow_outside_root))
    return ValidationReport(path, count, tuple(problems))
