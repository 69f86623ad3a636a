"""Following each row of a batched ``generate``: text so far, stop strings, per-row limits, streams.

``RowTracker`` is a ``StoppingCriteria``: transformers calls it once per decoding step with every
row's newest token, so it is the one place that sees each row grow. It decodes the row, ends it on
the end-of-turn token, a stop string or the row's own token limit (rows of one batch may differ),
and hands the new, settled text to the row's ``AnswerStream``. Text is settled when nothing later
can change it: a trailing half of a UTF-8 character, trailing whitespace (answers are stripped)
and a tail that could still grow into a stop string are held back until the row ends. So the
pieces of a stream always concatenate to exactly the final answer.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from transformers import StoppingCriteria

from ultra.answerer.requests import Answer, FinishReason

logger = logging.getLogger(__name__)

_END = object()


class AnswerStream(Iterator[str]):
    """Text pieces of one answer as they are generated; ``answer`` is set once it is exhausted.

    Safe to consume from another thread than the one generating (a queue sits in between).
    """

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._finished = False
        self.answer: Answer | None = None

    def __iter__(self) -> AnswerStream:
        return self

    def __next__(self) -> str:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._finished = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._finished = True
            raise item
        return item

    def text(self) -> str:
        """Consume the rest of the stream and return the whole answer text."""
        for _ in self:
            pass
        if self.answer is None:
            raise RuntimeError("the stream ended without an answer")
        return self.answer.text

    # producer side ------------------------------------------------------------------------
    def put(self, piece: str) -> None:
        if piece:
            self._queue.put(piece)

    def close(self, answer: Answer) -> None:
        self.answer = answer
        self._queue.put(_END)

    def fail(self, error: BaseException) -> None:
        self._queue.put(error)


def _held_stop_prefix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


@dataclass
class RowState:
    """One row of the batch: its tokens, its text so far, and how (whether) it ended."""

    prompt_tokens: int
    max_new_tokens: int
    stop: tuple[str, ...]
    sink: AnswerStream | None = None
    tokens: list[int] = field(default_factory=list)
    generated: int = 0
    text: str = ""
    emitted: str = ""
    finish_reason: FinishReason | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def add(self, token: int, eos_ids: set[int], decode: Callable[[list[int]], str]) -> None:
        self.generated += 1
        if token in eos_ids:
            self.end("stop")
            return
        self.tokens.append(token)
        text = decode(self.tokens).lstrip()
        cuts = [index for index in (text.find(stop) for stop in self.stop) if index >= 0]
        if cuts:
            self.text = text[: min(cuts)]
            self.end("stop")
            return
        self.text = text
        if self.generated >= self.max_new_tokens:
            self.end("length")
            return
        settled = text.rstrip("\ufffd")
        settled = settled[: len(settled) - _held_stop_prefix(settled, self.stop)].rstrip()
        self._emit(settled)

    def end(self, reason: FinishReason) -> None:
        self.finish_reason = reason
        self._emit(self.text.strip())

    def _emit(self, settled: str) -> None:
        if self.sink is None or len(settled) <= len(self.emitted):
            return
        if not settled.startswith(self.emitted):
            # cannot happen with byte-level BPE (decoding is prefix-stable once settled); say so if it does
            logger.warning("streamed text diverged from the decoded answer; the stream may differ from it")
            return
        self.sink.put(settled[len(self.emitted) :])
        self.emitted = settled

    def answer(self) -> Answer:
        return Answer(
            text=self.text.strip(),
            finish_reason=self.finish_reason or "length",
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.generated,
        )


class RowTracker(StoppingCriteria):
    """The per-row state of one ``generate`` call, updated at every decoding step."""

    def __init__(
        self,
        rows: list[RowState],
        eos_ids: set[int],
        decode: Callable[[list[int]], str],
    ) -> None:
        self.rows = rows
        self.eos_ids = eos_ids
        self.decode = decode

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        newest = input_ids[:, -1].tolist()
        for row, token in zip(self.rows, newest, strict=True):
            if not row.done:
                row.add(int(token), self.eos_ids, self.decode)
        return torch.tensor([row.done for row in self.rows], dtype=torch.bool, device=input_ids.device)

    def finish(self) -> list[Answer]:
        """End every row (a row still open ran into the batch's token limit) and close its stream."""
        answers = []
        for row in self.rows:
            if not row.done:
                row.end("length")
            answer = row.answer()
            if row.sink is not None:
                row.sink.close(answer)
            answers.append(answer)
        return answers
