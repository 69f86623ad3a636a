"""JSONL of Records, and LLaVA-format JSONL both ways; the one JSONL reader and line writer of
the project (answers, candidates, logs and reports files read and write through them)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from data_zh.schema import IMAGE_PLACEHOLDER, Media, Record, Turn

logger = logging.getLogger(__name__)

LLAVA_ROLES = {"human": "user", "gpt": "assistant", "user": "user", "assistant": "assistant"}
_META_KEY = "ultra"


class RecordError(ValueError):
    """A record or JSONL file that cannot be read; the message names the file, line and field."""


def describe_validation(error: ValidationError) -> str:
    """'field.path: message' for every problem, on one line."""
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or '<record>'}: {item['msg']}" for item in error.errors()
    )


def json_line(value: Any) -> str:
    """One value as a JSONL line: UTF-8 text with Chinese kept readable, ending in a newline."""
    return json.dumps(value, ensure_ascii=False) + "\n"


def record_line(record: Record) -> str:
    """One record as a JSONL line, the format every record file uses."""
    return json_line(record.model_dump(mode="json"))


def write_records(records: Iterable[Record], path: str | Path) -> int:
    """Write Records as UTF-8 JSONL (Chinese kept readable); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record_line(record))
            count += 1
    return count


def parse_json_bytes(line: bytes) -> Any:
    """A JSONL line (or a whole JSON file) as a value; ValueError with a bare reason (the caller adds
    file and line) for bytes that are not UTF-8, text that is not JSON, or JSON nested too deeply."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"not UTF-8 text (byte 0x{line[error.start]:02x} at position {error.start + 1})"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None


def jsonl_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of every non-blank line, newline kept (a line without one is the torn
    tail of a killed write); bytes, so one bad line cannot stop the file."""
    with Path(path).open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) of every non-blank line; a missing file or a line that is not UTF-8
    JSON raises RecordError naming the file and line. Callers that skip bad lines instead read
    :func:`jsonl_lines` and :func:`parse_json_bytes` themselves."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: file not found")
    for number, line in jsonl_lines(path):
        try:
            yield number, parse_json_bytes(line)
        except ValueError as error:
            raise RecordError(f"{path}:{number}: {error}") from None


def read_records(path: str | Path) -> list[Record]:
    """Read a JSONL of Records; the first bad line raises RecordError naming line, id and field."""
    path = Path(path)
    records = []
    for number, data in read_jsonl(path):
        try:
            records.append(Record.model_validate(data))
        except ValidationError as error:
            record_id = data.get("id", "?") if isinstance(data, dict) else "?"
            raise RecordError(
                f"{path}:{number}: record {record_id!r}: {describe_validation(error)}"
            ) from None
    return records


def to_llava(record: Record, include_meta: bool = True) -> dict[str, Any]:
    """LLaVA's ``{"id", "image"|"images", "conversations"}``; the rest under "ultra" when asked."""
    out: dict[str, Any] = {"id": record.id}
    images = [*record.media.images, *(f"{ref.path}#frame={ref.frame}" for ref in record.media.dicom)]
    if len(images) == 1:
        out["image"] = images[0]
    elif images:
        out["images"] = images
    out["conversations"] = [
        {"from": "human" if turn.role == "user" else "gpt", "value": turn.content}
        for turn in record.conversations
    ]
    if include_meta:
        meta = record.model_dump(mode="json", exclude={"id", "conversations"})
        meta["media"].pop("images")
        meta["media"].pop("dicom")
        meta["dicom_frames"] = [ref.model_dump() for ref in record.media.dicom]
        meta["n_images"] = len(record.media.images)
        out[_META_KEY] = meta
    return out


def from_llava(
    item: dict[str, Any],
    *,
    source: str = "llava",
    licence: str = "unknown",
    specialty: str = "general",
    modality: str = "other",
    language: str = "zh",
    task: str | None = None,
    root: str | None = None,
) -> Record:
    """A Record from one LLaVA item; metadata written by ``to_llava`` wins over the defaults."""
    if "conversations" not in item or not isinstance(item["conversations"], list):
        raise ValueError("missing 'conversations' list")
    images = item.get("images") or ([item["image"]] if item.get("image") else [])
    if isinstance(images, str):
        images = [images]
    turns = []
    for index, message in enumerate(item["conversations"]):
        speaker = message.get("from", message.get("role"))
        if speaker not in LLAVA_ROLES:
            raise ValueError(f"conversations[{index}]: unknown speaker {speaker!r}")
        turns.append(
            Turn(role=LLAVA_ROLES[speaker], content=str(message.get("value", message.get("content"))))
        )
    meta = item.get(_META_KEY)
    if meta is not None:
        meta = dict(meta)
        n_images = meta.pop("n_images", len(images))
        dicom = meta.pop("dicom_frames", [])
        media = dict(meta.pop("media", {}))
        media["images"] = list(images[:n_images])
        media["dicom"] = dicom
        return Record.model_validate({"id": str(item["id"]), "conversations": turns, "media": media, **meta})
    if images and turns and turns[0].role == "user":
        missing = len(images) - sum(t.content.count(IMAGE_PLACEHOLDER) for t in turns if t.role == "user")
        if missing > 0:
            turns[0] = Turn(
                role="user", content="\n".join([IMAGE_PLACEHOLDER] * missing + [turns[0].content])
            )
    closed = task == "closed_vqa"
    return Record(
        id=str(item["id"]),
        source=source,
        licence=licence,
        specialty=specialty,
        modality=modality,
        language=language,
        task=task or ("open_vqa" if images else "text_instruction"),
        media=Media(root=root, images=list(images)),
        conversations=turns,
        answer_type="closed" if closed else None,
    )


def write_llava(records: Iterable[Record], path: str | Path, include_meta: bool = True) -> int:
    """Write LLaVA-format JSONL; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json_line(to_llava(record, include_meta)))
            count += 1
    return count


def read_llava(path: str | Path, **defaults: Any) -> list[Record]:
    """Read LLaVA-format JSONL (or a JSON list, as LLaVA's own files are) into Records.

    Bad items are logged with their line and skipped, so one broken item never sinks a batch.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: file not found")
    data = path.read_bytes()
    if data.lstrip().startswith(b"["):
        try:
            items = list(enumerate(parse_json_bytes(data), start=1))
        except ValueError as error:
            raise RecordError(f"{path}: {error}") from None
    else:
        items = list(read_jsonl(path))
    records = []
    for number, item in items:
        try:
            records.append(from_llava(item, **defaults))
        except (ValueError, KeyError, TypeError) as error:
            detail = describe_validation(error) if isinstance(error, ValidationError) else str(error)
            logger.warning("%s:%d: skipped LLaVA item: %s", path, number, detail)
    return records
