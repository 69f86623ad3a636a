"""Step 2 of self-training: judged candidates -> preference pairs as unified-schema records
(``task: preference``, ``Record.preference``), with every dropped question counted by cause."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from data_zh.schema import Preference, Record, Turn, qa_turns
from fusion.progress import progress_bar
from ultra.selftrain.generate import Candidates
from ultra.selftrain.judges import Judge, Verdict

TIE = "tie"
JUDGE_BATCH = 16


@dataclass
class JudgeCounts:
    """Questions judged, pairs formed, and the dropped ones by cause (ties, unparseable, …).

    ``mean_score`` is the mean judge score of every scored answer: with the label judge, the share
    of the policy's sampled answers that are right (the round's score)."""

    questions: int = 0
    pairs: int = 0
    dropped: Counter = field(default_factory=Counter)
    scored_answers: int = 0
    score_sum: float = 0.0

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.scored_answers if self.scored_answers else None

    def as_dict(self) -> dict:
        return {
            "questions": self.questions,
            "pairs": self.pairs,
            "dropped": dict(sorted(self.dropped.items())),
            "mean_score": self.mean_score,
        }


def preference_record(item: Candidates, verdict: Verdict, judge: str) -> Record | None:
    """The pair (first best-scored answer, first worst-scored answer with other text); None for a
    tie (all scores equal, or the worst answers repeat the best one's text)."""
    scores = verdict.scores or []
    best, worst = max(scores), min(scores)
    if best == worst:
        return None
    chosen = item.answers[scores.index(best)]
    rejected = next(
        (
            answer
            for answer, score in zip(item.answers, scores, strict=True)
            if score == worst and answer != chosen
        ),
        None,
    )
    if not chosen or rejected is None:
        return None
    return item.record.derive(
        id=f"{item.record.id}-pair",
        task="preference",
        preference=Preference(
            chosen=Turn(role="assistant", content=chosen),
            rejected=Turn(role="assistant", content=rejected),
            judge=judge,
            reason=verdict.reason,
            scores=(best, worst),
        ).model_dump(),
    )


def judge_candidates(
    candidates: Sequence[Candidates], judge: Judge, show_progress: bool = True
) -> tuple[list[Record], JudgeCounts]:
    """Preference records of every question the judge separates; the others are counted by cause."""
    counts = JudgeCounts()
    pairs: list[Record] = []
    with progress_bar(
        total=len(candidates), description="selftrain judge", unit="question", enabled=show_progress
    ) as bar:
        for start in range(0, len(candidates), JUDGE_BATCH):
            batch = candidates[start : start + JUDGE_BATCH]
            for item, verdict in zip(batch, judge.judge(batch), strict=True):
                counts.questions += 1
                if verdict.problem is not None or verdict.scores is None:
                    counts.dropped[verdict.problem or "no_scores"] += 1
                    continue
                counts.scored_answers += len(verdict.scores)
                counts.score_sum += sum(verdict.scores)
                record = preference_record(item, verdict, judge.name)
                if record is None:
                    counts.dropped[TIE] += 1
                else:
                    pairs.append(record)
                    counts.pairs += 1
            bar.update(len(batch))
    return pairs, counts


def split_held_out(
    pairs: Sequence[Record], fraction: float, seed: int = 0
) -> tuple[list[Record], list[Record]]:
    """(train, held-out) with every pair of one image on the same side (no image in both)."""
    images = sorted({record.extra.get("image_id", record.id) for record in pairs})
    random.Random(seed).shuffle(images)
    held = set(images[: round(len(images) * fraction)])
    train = [r for r in pairs if r.extra.get("image_id", r.id) not in held]
    return train, [r for r in pairs if r.extra.get("image_id", r.id) in held]


def sft_records(pairs: Sequence[Record]) -> list[Record]:
    """The supervised control: each pair's question with its chosen answer as the target."""
    records = []
    for record in pairs:
        if record.preference is None:
            continue
        question = record.question or ""
        records.append(
            record.derive(
                id=f"{record.id}-sft",
                task="open_vqa",
                conversations=[
                    t.model_dump()
                    for t in qa_turns(question, record.preference.chosen.content, record.media.count)
                ],
                preference=None,
            )
        )
    return records
