"""Two-stage QA generation (LLaVA-Surg): facts from the text, then Chinese QA from the facts only.

Per input: stage 1 asks for the four kinds of facts as JSON, stage 2 for QA pairs citing one fact
each; a reply that is not valid JSON for its schema is asked again, at most ``max_attempts`` times,
then the input is recorded as failed (never raised). The guard drops pairs their fact does not
support; repeated pairs (same normalised question and answer, across the whole output) are dropped.

Output: ``OUT.jsonl`` (unified records) and ``OUT.log.jsonl`` (one line per finished input: done or
failed, kept/dropped pairs and why). A rerun skips the inputs logged as done, retries failed ones,
and first removes records of an input that was cut off before its log line, so nothing repeats.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from data_zh.io import json_line, read_jsonl, read_records, record_line, write_records
from data_zh.qagen.backends import BackendError, TextBackend
from data_zh.qagen.facts import Facts, QADraft, QADrafts, parse_json_reply
from data_zh.qagen.guard import MIN_SUPPORT, check_support
from data_zh.qagen.inputs import QASource
from data_zh.qagen.prompts import Prompts
from data_zh.schema import VIDEO_PLACEHOLDER, Record, Turn, qa_turns
from data_zh.text import normalize_zh
from fusion.progress import progress_bar

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
Reply = TypeVar("Reply", bound=BaseModel)
_PUNCTUATION = re.compile(r"[\s\W_]+")


class StageFailure(Exception):
    """A stage that produced no valid reply: the reasons of every attempt."""


@dataclass
class QAGenReport:
    """What a run did: inputs done / skipped (done before) / failed, pairs kept / dropped / duplicate."""

    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    kept: int = 0
    dropped: int = 0
    duplicates: int = 0


def log_path_for(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(out_path.stem + ".log.jsonl")


def pair_key(question: str, answer: str) -> str:
    """Normalised question and answer: two pairs with the same key are duplicates."""
    return "\x1f".join(_PUNCTUATION.sub("", normalize_zh(text)).lower() for text in (question, answer))


def ask_json(backend: TextBackend, prompt: str, schema: type[Reply], max_attempts: int) -> Reply:
    """The backend's reply parsed and validated as ``schema``; asks again on a bad reply or a
    retryable backend error, at most ``max_attempts`` times; raises ``StageFailure`` with every reason."""
    reasons = []
    for attempt in range(1, max_attempts + 1):
        try:
            return schema.model_validate(parse_json_reply(backend.complete(prompt)))
        except BackendError as error:
            reasons.append(f"attempt {attempt}: {error}")
            if not error.retryable:
                break
        except (ValueError, ValidationError) as error:
            reasons.append(f"attempt {attempt}: invalid {schema.__name__} JSON: {str(error).splitlines()[0]}")
    raise StageFailure("; ".join(reasons))


def qa_record(source: QASource, facts: Facts, draft: QADraft, fact: str, number: int, backend: str) -> Record:
    """One kept pair as a record: the input record's media and provenance, else a text record."""
    provenance = {"input_id": source.id, "fact_kind": draft.fact_kind, "fact_index": draft.fact_index}
    extra = {"question_type": draft.fact_kind, "fact": fact, "qagen": {**provenance, "backend": backend}}
    if source.record is not None:
        base = source.record
        turns = qa_turns(draft.question, draft.answer, n_images=base.media.count)
        if base.media.video is not None:
            turns[0] = Turn(role="user", content=f"{VIDEO_PLACEHOLDER}\n{turns[0].content}")
        has_media = base.media.count > 0 or base.media.video is not None
        return base.derive(
            id=f"{base.id}-qa{number}",
            task="open_vqa" if has_media else "text_instruction",
            language="zh",
            conversations=turns,
            answer_type="open",
            reasoning=facts.to_reasoning(),
            preference=None,
            extra={**base.extra, **extra},
        )
    meta = source.meta
    assert meta is not None
    return Record(
        id=f"{source.id}-qa{number}",
        source=meta.source,
        licence=meta.licence,
        specialty=meta.specialty,
        modality="text",
        language="zh",
        task="text_instruction",
        conversations=qa_turns(draft.question, draft.answer, n_images=0),
        answer_type="open",
        reasoning=facts.to_reasoning(),
        extra=extra,
    )


def _resume(out_path: Path, log_path: Path) -> tuple[set[str], set[str]]:
    """Inputs logged as done, and the pair keys already written; drops records of unfinished inputs."""
    done: set[str] = set()
    if log_path.is_file():
        for _, entry in read_jsonl(log_path):
            if entry.get("status") == "done":
                done.add(entry["id"])
    keys: set[str] = set()
    if out_path.is_file():
        records = read_records(out_path)
        finished = [r for r in records if r.extra.get("qagen", {}).get("input_id") in done]
        if len(finished) < len(records):
            logger.warning(
                "%s: removed %d record(s) of unfinished inputs", out_path, len(records) - len(finished)
            )
            write_records(finished, out_path)
        keys = {pair_key(r.question or "", r.answer or "") for r in finished}
    return done, keys


def generate_qa(
    sources: Sequence[QASource],
    backend: TextBackend,
    out_path: str | Path,
    *,
    prompts: Prompts | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    min_support: float = MIN_SUPPORT,
    show_progress: bool = True,
) -> QAGenReport:
    """Run both stages over ``sources``, appending to ``out_path`` (resumable; see the module doc)."""
    prompts = prompts or Prompts.load()
    out_path = Path(out_path)
    log_path = log_path_for(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done, seen = _resume(out_path, log_path)
    report = QAGenReport(skipped=sum(1 for s in sources if s.id in done))
    pending = [s for s in sources if s.id not in done]
    with (
        open(out_path, "a", encoding="utf-8") as out,
        open(log_path, "a", encoding="utf-8") as log,
    ):
        for source in progress_bar(pending, description="qagen", unit="input", enabled=show_progress):
            entry = _one_input(source, backend, prompts, max_attempts, min_support, seen, report, out)
            log.write(json_line(entry))
            out.flush()
            log.flush()
    return report


def _one_input(
    source: QASource,
    backend: TextBackend,
    prompts: Prompts,
    max_attempts: int,
    min_support: float,
    seen: set[str],
    report: QAGenReport,
    out,
) -> dict:
    try:
        facts = ask_json(backend, prompts.extract_prompt(source.text), Facts, max_attempts)
        if facts.is_empty():
            raise StageFailure("stage 1 extracted no facts")
        drafts = ask_json(backend, prompts.write_prompt(facts.numbered()), QADrafts, max_attempts).qa
    except StageFailure as failure:
        logger.warning("%s: failed: %s", source.id, failure)
        report.failed.append((source.id, str(failure)))
        return {"id": source.id, "status": "failed", "error": str(failure)}
    kept, dropped = 0, []
    for draft in drafts:
        fact = facts.get(draft.fact_kind, draft.fact_index)
        if fact is None:
            reason = f"cites {draft.fact}, which stage 1 did not extract"
        else:
            reason = check_support(draft.question, draft.answer, fact, min_support).reason
        if reason:
            logger.info("%s: dropped %r → %r: %s", source.id, draft.question, draft.answer, reason)
            dropped.append({"question": draft.question, "answer": draft.answer, "reason": reason})
            continue
        key = pair_key(draft.question, draft.answer)
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        out.write(record_line(qa_record(source, facts, draft, fact, kept, backend.name)))
        kept += 1
    report.done += 1
    report.kept += kept
    report.dropped += len(dropped)
    return {"id": source.id, "status": "done", "kept": kept, "dropped": dropped}
