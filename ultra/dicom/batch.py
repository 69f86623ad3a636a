"""``ultra dicom``'s engine: run :func:`process_input` over every input (process pool or Ray Data),
then group studies, screen, answer questions and write ``results.jsonl``, ``errors.jsonl`` and a
summary where processed + skipped + failed = inputs seen. Inputs are named by id only (see
:mod:`ultra.dicom.sources`), and an unsafe OUTDIR is refused before anything is written."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydicom import dcmread

from fusion.progress import progress_bar
from ultra.dicom.burned_in import detector_threads, ocr_available
from ultra.dicom.deid_key import load_or_create_key
from ultra.dicom.layout import check_layout
from ultra.dicom.outputs import atomic_write_json, atomic_write_jsonl, sweep_partial_files
from ultra.dicom.process import InstanceOutcome, ProcessOptions, process_input
from ultra.dicom.sources import InputItem, list_inputs
from ultra.dicom.studies import ImageSelector, group_studies, keep_all
from ultra.media import read_image
from ultra.media.limits import DEFAULT_LIMITS

logger = logging.getLogger(__name__)

Engine = Literal["pool", "ray"]
# Answers every (images, question) request, batched by the implementation.
Answerer = Callable[[list[tuple[list[Image.Image], str]]], list[str]]


@dataclass
class BatchSummary:
    inputs: int
    processed: int
    skipped: int
    failed: int
    frames: int
    studies: int
    seconds: float
    skip_reasons: dict[str, int]
    pixel_cleaning: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# What a worker needs, imported once in the forkserver; nothing that pulls in torch (~800 MB a process).
_WORKER_PRELOAD = ["ultra.dicom.process", "ultra.dicom.burned_in", "fusion.frame_sampling", "fusion.ultrasound"]


def _worker_pid(delay_s: float) -> int:
    time.sleep(delay_s)
    return os.getpid()


_PR_SET_PDEATHSIG = 1


def _end_with_parent(parent_alive: Connection) -> None:
    """Worker initializer: end this worker as soon as the batch process is gone.

    The batch process holds the only other end of ``parent_alive``; when it dies (even by
    ``kill -9``) the pipe reads end-of-file and the worker exits at once, mid-file or idle. On
    Linux the kernel also sends SIGKILL when the forkserver that forked the worker dies.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    thread = threading.Thread(target=_exit_on_eof, args=(parent_alive,), name="parent-watch", daemon=True)
    thread.start()


def _exit_on_eof(parent_alive: Connection) -> None:
    with contextlib.suppress(EOFError, OSError):
        parent_alive.recv_bytes()
    os._exit(1)  # no cleanup to wait for: outputs are written atomically and swept by the next run


class BoundPool(ProcessPoolExecutor):
    """A process pool whose workers live no longer than the process that made it.

    Each worker watches a pipe that only this process writes to (see :func:`_end_with_parent`);
    :meth:`stop` closes it, so workers end now rather than after the file each is on.
    """

    def __init__(self, workers: int, context: multiprocessing.context.BaseContext) -> None:
        reader, self._parent_alive = context.Pipe(duplex=False)
        super().__init__(
            max_workers=workers, mp_context=context, initializer=_end_with_parent, initargs=(reader,)
        )
        self._reader = reader

    def stop(self) -> None:
        """End every worker at once (interrupted or terminated batch) and shut the pool down."""
        self._parent_alive.close()
        self.shutdown(wait=True, cancel_futures=True)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
        if wait:
            self._parent_alive.close()
            self._reader.close()


def make_pool(workers: int) -> BoundPool:
    """A started process pool of ``workers`` processes, forked from a forkserver (safe beside
    threads of torch or Ray) that imports the worker's modules once; its workers end with this
    process (see :class:`BoundPool`).

    All workers are started here: a forkserver pool otherwise spawns a worker only when none is
    idle, so a pool first used one file at a time stays at one process for good.
    """
    workers = max(1, workers)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_WORKER_PRELOAD)
    pool = BoundPool(workers, context)
    pids = {f.result() for f in [pool.submit(_worker_pid, 0.2) for _ in range(workers)]}
    logger.debug("process pool of %d workers started (%d answered)", workers, len(pids))
    return pool


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """While a batch runs, SIGTERM raises SystemExit in the main thread, so the pool is stopped
    (its workers ended) on the way out like on Ctrl-C; elsewhere the handler is left as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_pool(
    job: Callable[[InputItem], InstanceOutcome],
    entries: Iterable[InputItem | InstanceOutcome],
    executor: Executor,
) -> Iterator[InstanceOutcome]:
    """Submit while the duplicate check reads headers, so workers start at once; then collect."""
    futures = {}
    for entry in entries:
        if isinstance(entry, InstanceOutcome):
            yield entry
        else:
            futures[executor.submit(job, entry)] = entry
    for future in as_completed(futures):
        try:
            yield future.result()
        except Exception as exc:  # a worker that died (e.g. out of memory) fails its file only
            yield InstanceOutcome(futures[future].id, "failed", f"worker failed ({type(exc).__name__})")


def _without_duplicates(items: list[InputItem]) -> Iterator[InputItem | InstanceOutcome]:
    """Each input, or a ``skipped`` outcome for a local file whose SOP Instance UID came before.

    Two files with one SOP Instance UID would write the same outputs (and a PACS keeps only one), so
    the header of every local file is read once here; unreadable files go on to fail in a worker.
    """
    first_seen: dict[str, str] = {}
    for item in items:
        if item.problem is not None:
            yield InstanceOutcome(item.id, item.problem_status, item.problem)
            continue
        if item.path is None:
            yield item
            continue
        try:
            if os.stat(item.path).st_size > DEFAULT_LIMITS.max_bytes:
                yield item  # the worker refuses it by its size, before reading
                continue
            header = dcmread(item.path, stop_before_pixels=True)
            sop = str(header.SOPInstanceUID)
        except Exception:
            yield item
            continue
        if sop in first_seen:
            reason = f"duplicate SOP Instance UID (same as {first_seen[sop]})"
            yield InstanceOutcome(item.id, "skipped", reason, extra={"duplicate": True})
        else:
            first_seen[sop] = item.id
            yield item


def _ray_row(row: dict[str, Any], outdir: str, options_json: str, key: bytes | None) -> dict[str, Any]:
    item = InputItem(**json.loads(row["item"]))
    outcome = process_input(item, outdir, ProcessOptions.model_validate_json(options_json), key)
    return {"outcome": json.dumps(dataclasses.asdict(outcome), ensure_ascii=False)}


def _run_ray(
    items: list[InputItem], outdir: str, options: ProcessOptions, key: bytes | None, workers: int
) -> Iterator[InstanceOutcome]:
    try:
        import ray
    except ImportError:
        raise RuntimeError("--engine ray needs the cluster extra: pip install 'ultra[cluster]'") from None
    if not ray.is_initialized():
        ray.init()
    # ASCII JSON: a path that is not UTF-8 holds lone surrogates, which Arrow strings cannot carry.
    rows = [{"item": json.dumps(dataclasses.asdict(item))} for item in items]
    if not rows:
        return
    dataset = ray.data.from_items(rows).map(
        partial(_ray_row, outdir=outdir, options_json=options.model_dump_json(), key=key),
        concurrency=max(1, workers),
        num_cpus=1,
    )
    for row in dataset.iter_rows():
        yield InstanceOutcome(**json.loads(row["outcome"]))


def _attach_run_log(outdir: Path) -> logging.Handler:
    handler = logging.FileHandler(outdir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger("ultra").addHandler(handler)
    return handler


def run_batch(
    source: str | Path,
    outdir: str | Path,
    options: ProcessOptions | None = None,
    *,
    workers: int = 1,
    engine: Engine = "pool",
    deid_key: str | Path | None = None,
    questions: list[str] | None = None,
    answerer: Answerer | None = None,
    selector: ImageSelector = keep_all,
    executor: Executor | None = None,
    show_progress: bool = False,
) -> BatchSummary:
    """Process SOURCE into OUTDIR and return the summary (also saved as ``summary.json``).

    Raises :class:`~ultra.dicom.layout.LayoutError` before writing anything when OUTDIR is unsafe.
    """
    options = options or ProcessOptions()
    if options.ocr_threads is None:  # the workers share the cores: no oversubscription
        options = options.model_copy(update={"ocr_threads": detector_threads(workers)})
    questions = list(questions or [])
    if questions and answerer is None:
        raise ValueError("questions were given but no answerer (model) to answer them")
    check_layout(source, outdir)
    out = Path(outdir)
    # The key names inputs (ids) even with keep_phi; it de-identifies only without it.
    id_key = load_or_create_key(deid_key, out)
    key = None if options.keep_phi else id_key
    items = list_inputs(source, id_key)
    out.mkdir(parents=True, exist_ok=True)
    sweep_partial_files(out)  # half-written files of a killed run
    handler = _attach_run_log(out)
    try:
        return _run(
            items, out, options, key, workers, engine, questions, answerer, selector, executor, show_progress
        )
    finally:
        logging.getLogger("ultra").removeHandler(handler)
        handler.close()


def _run(
    items: list[InputItem],
    out: Path,
    options: ProcessOptions,
    key: bytes | None,
    workers: int,
    engine: Engine,
    questions: list[str],
    answerer: Answerer | None,
    selector: ImageSelector,
    executor: Executor | None,
    show_progress: bool,
) -> BatchSummary:
    start = time.perf_counter()
    logger.info("%d inputs; engine %s, %d worker(s)", len(items), engine, workers)
    job = partial(process_input, outdir=str(out), options=options, key=key)
    seen = len(items)
    outcomes: list[InstanceOutcome] = []
    entries = _without_duplicates(items)
    own: BoundPool | None = None
    with progress_bar(total=seen, description="DICOM", unit="file", enabled=show_progress) as progress:
        if engine == "ray":
            checked = list(entries)
            unique = [e for e in checked if isinstance(e, InputItem)]
            duplicates = [e for e in checked if isinstance(e, InstanceOutcome)]
            stream = itertools.chain(duplicates, _run_ray(unique, str(out), options, key, workers))
        elif executor is not None:
            stream = _run_pool(job, entries, executor)
        else:
            own = make_pool(workers)
            stream = _run_pool(job, entries, own)
        try:
            with _sigterm_as_exit():
                for outcome in stream:
                    outcomes.append(outcome)
                    if outcome.status == "failed":
                        logger.warning("%s: %s", outcome.name, outcome.reason)
                    progress.update()
        except BaseException:
            if own is not None:
                own.stop()  # Ctrl-C or SIGTERM: the workers end now, not after their files
            raise
        finally:
            if own is not None:
                own.shutdown(cancel_futures=True)
    outcomes.sort(key=lambda o: o.name)
    return _finish(out, outcomes, seen, questions, answerer, selector, start, options)


def _finish(
    out: Path,
    outcomes: list[InstanceOutcome],
    seen: int,
    questions: list[str],
    answerer: Answerer | None,
    selector: ImageSelector,
    start: float,
    options: ProcessOptions,
) -> BatchSummary:
    records = [o.record for o in outcomes if o.record is not None]
    errors = [
        {"id": o.name, "status": o.status, "reason": o.reason}
        for o in outcomes
        if o.status == "failed" or (o.status == "skipped" and not o.extra.get("resumed"))
    ]
    studies = group_studies(records)
    selections, kept_pixels = [], []
    needs_pixels = bool(questions) or selector is not keep_all
    for study in studies:
        pictures = (
            [read_image(out / image.path, source_id=image.path) for image in study.images]
            if needs_pixels
            else []
        )
        kept = selector(study, pictures)
        selections.append(kept)
        if questions:
            by_path = {image.path: picture for image, picture in zip(study.images, pictures, strict=True)}
            kept_pixels.append([by_path[image.path] for image, _ in kept])
    answers: list[list[str]] = [[] for _ in studies]
    if questions and answerer is not None:
        requests = []
        for images in kept_pixels:
            requests.extend((images, question) for question in questions)
        flat = answerer(requests) if requests else []
        for index in range(len(studies)):
            answers[index] = flat[index * len(questions) : (index + 1) * len(questions)]
    lines = [
        {
            "study": study.uid,
            "instances": study.instances,
            "images": [image.path for image, _ in kept],
            "weights": [round(weight, 6) for _, weight in kept],
            "questions": questions,
            "answers": study_answers,
        }
        for study, kept, study_answers in zip(studies, selections, answers, strict=True)
    ]
    atomic_write_jsonl(out / "results.jsonl", lines)
    atomic_write_jsonl(out / "errors.jsonl", errors)
    reasons: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.status == "skipped":
            reason = _skip_category(outcome)
            reasons[reason] = reasons.get(reason, 0) + 1
    summary = BatchSummary(
        inputs=seen,
        processed=sum(o.status == "processed" for o in outcomes),
        skipped=sum(o.status == "skipped" for o in outcomes),
        failed=sum(o.status == "failed" for o in outcomes),
        frames=sum(o.frames for o in outcomes),
        studies=len(studies),
        seconds=round(time.perf_counter() - start, 3),
        skip_reasons=reasons,
        pixel_cleaning=pixel_cleaning_summary(outcomes, options),
    )
    if summary.processed + summary.skipped + summary.failed != seen:
        raise RuntimeError(f"accounting error: {summary} does not add up to {seen} inputs")
    atomic_write_json(out / "summary.json", summary.as_dict())
    logger.info(
        "done: %d inputs = %d processed + %d skipped + %d failed; %d studies",
        seen,
        summary.processed,
        summary.skipped,
        summary.failed,
        summary.studies,
    )
    return summary


def _skip_category(outcome: InstanceOutcome) -> str:
    if outcome.extra.get("resumed"):
        return "already done (resume)"
    if outcome.extra.get("duplicate"):
        return "duplicate"
    reason = outcome.reason or ""
    return "not ultrasound" if "odality" in reason else reason


def pixel_cleaning_summary(outcomes: list[InstanceOutcome], options: ProcessOptions) -> dict[str, Any]:
    """What was done to the pixels, overall and per instance (method, text boxes masked, OCR time)."""
    if options.keep_phi or options.keep_burned_in_text:
        mode = "none: burned-in text kept (--keep-phi or --keep-burned-in-text)"
    elif not options.ocr:
        mode = "regions only: OCR turned off"
    elif not ocr_available():
        mode = "regions only: OCR not installed (pip install 'ultra[ocr]')"
    else:
        mode = "OCR text boxes + regions"
    done = [o for o in outcomes if o.record is not None]  # processed now or resumed
    records = [o.record for o in done if o.record is not None]
    cleaning = [r.get("pixel_cleaning", {}) for r in records]
    ocr_frames = sum(len(c.get("ocr_frames", [])) for c in cleaning)
    ocr_seconds = sum(float(o.extra.get("ocr_seconds", 0.0)) for o in done)
    return {
        "mode": mode,
        "text_boxes": sum(int(c.get("text_boxes", 0)) for c in cleaning),
        "ocr_frames": ocr_frames,
        "ocr_seconds": round(ocr_seconds, 3),
        "ocr_seconds_per_frame": round(ocr_seconds / ocr_frames, 4) if ocr_frames else None,
        "instances": [
            {
                "sop_instance": r["sop_instance"],
                "method": r.get("pixel_cleaning", {}).get("method", "none"),
                "text_boxes": r.get("pixel_cleaning", {}).get("text_boxes", 0),
            }
            for r in records
        ],
    }
