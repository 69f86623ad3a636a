"""``DynamicBatcher``: concurrent requests gathered for a few milliseconds, answered by one batched
generate (``Answerer.stream_batch``), each answer streamed back to its own client.

One worker thread owns the gathering. It waits for a first request and for the previous batch to
finish (requests arriving meanwhile queue up), then takes what is queued, up to ``max_batch``.
For ``wait_ms`` at most it also waits for requests still being read (the server marks each from
its arrival until it is submitted, ``receiving``) and, after a batch of N, until N requests are
in hand: the clients just answered usually come straight back. So a burst of clients shares one
batch, steady load keeps batches full, and a lone client's request never waits. A batch
whose encoding fails (a prompt too long, a reserved token in the text) is retried request by
request, so one bad request fails alone.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

from ultra.answerer import Answer, Answerer, AnswerStream, Request

logger = logging.getLogger(__name__)


class _BatchDone:
    """Whether one batch is over: every answer generated, or every stream ended or abandoned
    (a failed generation sets no answer; its readers end their streams on the error)."""

    def __init__(self, streams: list[AnswerStream]) -> None:
        self._streams = streams
        self.size = len(streams)
        self._left = len(streams)
        self._lock = threading.Lock()
        self._released = threading.Event()
        if not streams:
            self._released.set()

    def release(self) -> None:
        with self._lock:
            self._left -= 1
            if self._left <= 0:
                self._released.set()

    def wait(self, poll_s: float = 0.002) -> None:
        while not self._released.wait(poll_s):
            if all(stream.answer is not None for stream in self._streams):
                return


class BatchedStream(Iterator[str]):
    """One client's answer: the pieces of its ``AnswerStream``; ``close`` when abandoned early."""

    def __init__(self, stream: AnswerStream, done: _BatchDone) -> None:
        self._stream = stream
        self._done = done
        self._released = False

    def __iter__(self) -> BatchedStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._stream)
        except BaseException:
            self.close()
            raise

    @property
    def answer(self) -> Answer | None:
        return self._stream.answer

    def close(self) -> None:
        if not self._released:
            self._released = True
            self._done.release()


@dataclass
class BatchStats:
    """What the batcher has done: batches started and how many requests each held."""

    batches: int = 0
    requests: int = 0
    sizes: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "batches": self.batches,
            "requests": self.requests,
            "max_batch_size_seen": max(self.sizes, default=0),
            "batch_sizes": {str(size): count for size, count in sorted(self.sizes.items())},
        }


@dataclass
class _Job:
    request: Request
    future: Future = field(default_factory=Future)


class DynamicBatcher:
    """Gathers concurrent requests (up to ``max_batch``, waiting ``wait_ms`` at most for those still
    being read) and answers them together."""

    def __init__(self, answerer: Answerer, max_batch: int = 16, wait_ms: float = 50.0) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if wait_ms < 0:
            raise ValueError(f"wait_ms must be >= 0, got {wait_ms}")
        self.answerer = answerer
        self.max_batch = max_batch
        self.wait_s = wait_ms / 1000.0
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._stats = BatchStats()
        self._stats_lock = threading.Lock()
        self._arriving = 0
        self._arriving_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ultra-batcher", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def receiving(self) -> Iterator[Callable[[Request], Future]]:
        """Marks a request being read (body, images) until it is submitted through the function
        this yields: a batch about to start waits up to ``wait_ms`` for marked requests."""
        submitted = False

        def submit(request: Request) -> Future:
            nonlocal submitted
            job = _Job(request)
            with self._arriving_lock:  # unmarked and queued at once: never seen as neither
                self._arriving -= 1
                submitted = True
                self._jobs.put(job)
            return job.future

        with self._arriving_lock:
            self._arriving += 1
        try:
            yield submit
        finally:
            with self._arriving_lock:
                if not submitted:
                    self._arriving -= 1

    def arriving(self) -> int:
        with self._arriving_lock:
            return self._arriving

    def submit(self, request: Request) -> Future:
        """A future resolving to the request's ``BatchedStream`` (or to its encoding error)."""
        job = _Job(request)
        self._jobs.put(job)
        return job.future

    def stats(self) -> dict[str, object]:
        with self._stats_lock:
            return self._stats.as_dict()

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=5)

    # worker -----------------------------------------------------------------------------------
    def _gather(self, first: _Job, expected: int) -> tuple[list[_Job], bool]:
        """``first`` and everything queued, up to ``max_batch``; for up to ``wait_s`` more, also
        requests still being read, and the clients of the batch that just ended (``expected``
        requests) coming back with their next request."""
        jobs = [first]
        deadline = time.monotonic() + self.wait_s
        while len(jobs) < self.max_batch:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                if time.monotonic() >= deadline or (self.arriving() == 0 and len(jobs) >= expected):
                    break
                try:
                    job = self._jobs.get(timeout=0.002)
                except queue.Empty:
                    continue
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _run(self) -> None:
        previous = _BatchDone([])
        while True:
            first = self._jobs.get()
            if first is None:
                return
            previous.wait()  # requests that arrive meanwhile join the next batch
            jobs, stopping = self._gather(first, expected=previous.size)
            previous = self._start(jobs)
            if stopping:
                return

    def _start(self, jobs: list[_Job]) -> _BatchDone:
        try:
            streams = self.answerer.stream_batch([job.request for job in jobs])
        except Exception as error:
            if len(jobs) == 1:
                jobs[0].future.set_exception(error)
                return _BatchDone([])
            logger.debug("a batch of %d failed to encode; answering its requests one by one", len(jobs))
            return self._start_one_by_one(jobs)
        with self._stats_lock:
            self._stats.batches += 1
            self._stats.requests += len(jobs)
            self._stats.sizes[len(jobs)] += 1
        done = _BatchDone(streams)
        for job, stream in zip(jobs, streams, strict=True):
            job.future.set_result(BatchedStream(stream, done))
        return done

    def _start_one_by_one(self, jobs: list[_Job]) -> _BatchDone:
        good = []
        for job in jobs:
            try:
                self.answerer.encode(job.request)
            except Exception as error:
                job.future.set_exception(error)
            else:
                good.append(job)
        return self._start(good) if good else _BatchDone([])
