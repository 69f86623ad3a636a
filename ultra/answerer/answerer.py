"""``Answerer``: the one front door for answering questions about images.

Every surface — ``ultra ask``, ``ultra eval``, ``ultra dicom --question``, ``--explain``, training
validation, the demo and the API — calls this class, so loading, the untrained-model check,
batching, streaming, stop strings and token accounting exist once.

Thread safety: one lock per ``Answerer`` serialises every model call (generation and scoring).
Requests are encoded (tokenised, images preprocessed) outside the lock in the caller's thread,
so many threads can share one ``Answerer``; the model runs one batch at a time, and batching
concurrent requests together is the caller's choice (``stream_batch``, as the API server does).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import StoppingCriteriaList

from fusion.progress import progress_bar
from ultra.answerer.choice import Choice, check_candidates, softmax
from ultra.answerer.inputs import (
    EncodedRequest,
    base_model,
    collate_requests,
    encode_answers,
    encode_request,
)
from ultra.answerer.requests import (
    DEFAULT_MODEL,
    Answer,
    GenerationSettings,
    Likelihood,
    PromptTooLongError,
    Request,
    UntrainedModelError,
)
from ultra.answerer.streaming import AnswerStream, RowState, RowTracker
from ultra.model.processor import IGNORE_INDEX, UltraProcessor

logger = logging.getLogger(__name__)


def check_projectors_trained(model: nn.Module, allow_untrained: bool = False) -> None:
    """Refuse a model whose image pathway is still random, unless the caller accepts that."""
    if bool(getattr(base_model(model).config, "projectors_trained", False)):
        return
    if allow_untrained:
        logger.warning("this model's image projectors were never trained: its answers ignore the image")
        return
    raise UntrainedModelError(
        "this model's image projectors were never trained, so its answers cannot depend on the image. "
        "Train them first (`ultra train` with a projector/fusion stage, see configs/), or pass "
        "--allow-untrained to run it anyway (for tests of random-init checkpoints)."
    )


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Inference mode and eval mode, restoring training mode afterwards (validation mid-training)."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _seeded(seed: int | None, device: torch.device) -> contextlib.AbstractContextManager:
    """Sampling with a fixed seed without touching the caller's random state."""
    if seed is None:
        return contextlib.nullcontext()
    devices = [device] if device.type == "cuda" else []
    stack = contextlib.ExitStack()
    stack.enter_context(torch.random.fork_rng(devices=devices))
    torch.manual_seed(seed)
    return stack


class Answerer:
    """A loaded model and its processor, answering ``Request`` objects."""

    def __init__(self, model: nn.Module, processor: UltraProcessor, *, allow_untrained: bool = False) -> None:
        check_projectors_trained(model, allow_untrained)
        self.model = model
        self.processor = processor
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model: str | Path = DEFAULT_MODEL,
        adapter: str | Path | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        allow_untrained: bool = False,
    ) -> Answerer:
        """A preset name (``tiny-zh`` = the embedded model) or a checkpoint folder, plus an adapter."""
        from ultra.model import load_model

        loaded, processor = load_model(model, adapter=adapter, device=device, dtype=dtype)
        return cls(loaded, processor, allow_untrained=allow_untrained)

    # facts ----------------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        """Tokens the language model can attend to (prompt + answer)."""
        return int(base_model(self.model).config.text_config.max_position_embeddings)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, request: Request) -> EncodedRequest:
        """The request's tensors; raises ``PromptTooLongError`` when no room is left to answer."""
        encoded = encode_request(self.model, self.processor, request)
        prompt_tokens = int(encoded.input_ids.shape[0])
        if prompt_tokens >= self.context_length:
            raise PromptTooLongError(prompt_tokens, self.context_length)
        return encoded

    # generation -----------------------------------------------------------------------------
    def answer(
        self, requests: Sequence[Request], batch_size: int = 8, progress: str | None = None
    ) -> list[Answer]:
        """Answers in request order; batches of ``batch_size`` within each settings group.

        ``progress`` is the label of a progress bar on stderr (none when ``None``).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        answers: list[Answer | None] = [None] * len(requests)
        with progress_bar(
            total=len(requests), description=progress or "", unit="answer", enabled=progress is not None
        ) as bar:
            for indices in self._groups(requests, batch_size):
                encoded = [self.encode(requests[i]) for i in indices]
                results = self._generate([requests[i] for i in indices], encoded, [None] * len(indices))
                for index, result in zip(indices, results, strict=True):
                    answers[index] = result
                bar.update(len(indices))
        return [answer for answer in answers if answer is not None]

    def stream(self, request: Request) -> Iterator[str]:
        """Text pieces of one answer as they are generated (``"".join`` equals ``answer``'s text)."""
        yield from self.stream_batch([request])[0]

    def stream_batch(self, requests: Sequence[Request]) -> list[AnswerStream]:
        """Generate several requests together, each streamed to its own consumer.

        Returns at once (after encoding, which raises for a bad request); generation runs in a
        background thread, group by group. Each ``AnswerStream`` yields its answer's pieces and
        then carries the final ``Answer`` in ``.answer``; a generation error is raised by every
        stream that had not finished.
        """
        encoded = [self.encode(request) for request in requests]
        streams = [AnswerStream() for _ in requests]

        def work() -> None:
            for indices in self._groups(requests, batch_size=len(requests) or 1):
                try:
                    self._generate(
                        [requests[i] for i in indices],
                        [encoded[i] for i in indices],
                        [streams[i] for i in indices],
                    )
                except BaseException as error:  # handed to the consumers, who re-raise it
                    logger.debug("generation failed", exc_info=True)
                    for i in indices:
                        if streams[i].answer is None:
                            streams[i].fail(error)

        # not a daemon: the interpreter waits for it at exit; a daemon thread still inside torch
        # when `ultra ask` ends aborted the process ("terminate called without an active exception")
        threading.Thread(target=work, name="ultra-answerer", daemon=False).start()
        return streams

    @staticmethod
    def _groups(requests: Sequence[Request], batch_size: int) -> list[list[int]]:
        """Indices of requests that can share a ``generate`` call, in chunks of ``batch_size``."""
        groups: dict[tuple, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.settings.group_key(), []).append(index)
        return [
            members[start : start + batch_size]
            for members in groups.values()
            for start in range(0, len(members), batch_size)
        ]

    def _generate(
        self,
        requests: Sequence[Request],
        encoded: Sequence[EncodedRequest],
        sinks: Sequence[AnswerStream | None],
    ) -> list[Answer]:
        settings: GenerationSettings = requests[0].settings
        rows = []
        for request, item, sink in zip(requests, encoded, sinks, strict=True):
            prompt_tokens = int(item.input_ids.shape[0])
            room = self.context_length - prompt_tokens
            rows.append(
                RowState(
                    prompt_tokens=prompt_tokens,
                    max_new_tokens=min(request.settings.max_new_tokens, room),
                    stop=request.settings.stop,
                    sink=sink,
                )
            )
        tracker = RowTracker(rows, {self.processor.eos_token_id}, self._decode)
        kwargs = {
            "max_new_tokens": max(row.max_new_tokens for row in rows),
            "eos_token_id": self.processor.eos_token_id,
            "pad_token_id": self.processor.pad_token_id,
            "stopping_criteria": StoppingCriteriaList([tracker]),
        }
        if settings.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=None)
        with self._lock, _eval_mode(self.model):
            batch = collate_requests(self.model, self.processor, encoded, padding_side="left")
            with _seeded(settings.seed, self.device):
                self.model.generate(**batch, **kwargs)
        return tracker.finish()

    def _decode(self, tokens: list[int]) -> str:
        return self.processor.tokenizer.decode(tokens, skip_special_tokens=True)

    # scoring --------------------------------------------------------------------------------
    def log_likelihood(self, request: Request, text: str) -> Likelihood:
        """``log p(text | request)`` with ``text`` as the assistant's answer (its closing
        end-of-turn token not counted). ``.mean`` is the per-token average."""
        return self.log_likelihoods([(request, text)], batch_size=1)[0]

    def log_likelihoods(self, pairs: Sequence[tuple[Request, str]], batch_size: int = 8) -> list[Likelihood]:
        """``log_likelihood`` of many (request, text) pairs, ``batch_size`` at a time."""
        results: list[Likelihood] = []
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            results += self._score([encode_request(self.model, self.processor, r, t) for r, t in chunk])
        return results

    def choose(self, request: Request, candidates: Sequence[str], temperature: float = 1.0) -> Choice:
        """Probabilities of the closed answers ``candidates`` (at most 16) to ``request``: a softmax
        at ``temperature`` over each candidate's summed log-likelihood (``ultra.answerer.choice``).

        The prompt and its images are encoded once and every candidate scored in one batch.
        """
        items = check_candidates(candidates)
        scores = self._score(encode_answers(self.model, self.processor, request, items))
        totals = tuple(score.total for score in scores)
        return Choice(
            candidates=items,
            log_likelihoods=totals,
            tokens=tuple(score.tokens for score in scores),
            probabilities=tuple(softmax(totals, temperature)),
            temperature=float(temperature),
        )

    def _score(self, encoded: Sequence[EncodedRequest]) -> list[Likelihood]:
        """Summed log-probabilities of the labelled tokens of each encoded exchange (one batch)."""
        for item in encoded:
            if item.input_ids.shape[0] > self.context_length:
                raise PromptTooLongError(int(item.input_ids.shape[0]), self.context_length)
        with self._lock, _eval_mode(self.model):
            batch = collate_requests(self.model, self.processor, encoded, padding_side="right")
            labels = batch.pop("labels")
            logits = self.model(**batch).logits[:, :-1].float()
        targets = labels[:, 1:]
        mask = targets != IGNORE_INDEX
        picked = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
        totals = (picked * mask).sum(dim=1)
        return [
            Likelihood(total=float(total), tokens=int(count))
            for total, count in zip(totals.tolist(), mask.sum(dim=1).tolist(), strict=True)
        ]
