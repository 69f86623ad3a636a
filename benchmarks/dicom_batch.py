"""Speed of ``ultra dicom`` without the model against a plain-pydicom floor, in one process.

The decodable shared ultrasound files are copied with new UIDs into a temp folder (>= 400
instances). Measured: files/s and frames/s of the pipeline (decode, de-identify, crop, write PNG)
with 1 and 2 pool workers (pool warmed first) with burned-in text masked by regions only (OCR
off), and of the floor: a plain loop of ``pydicom.dcmread`` + ``pixel_array`` + the same PNG writes
over the same files. Targets: one worker <= 1.3x the floor's time; two workers >= 1.6x one
worker's throughput. Separately, on a smaller corpus (``--ocr-copies``), one worker with OCR on:
its time over the floor's on the same files, and the OCR cost per OCR'd frame.

    python -m benchmarks.dicom_batch [--copies 31] [--rounds 2] [--ocr-copies 1] [--ocr-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from benchmarks.shared_data import shared_us_folder
from ultra.dicom import ProcessOptions, make_pool, run_batch
from ultra.dicom.outputs import write_png


def build_corpus(target: Path, copies: int) -> int:
    """Copy every decodable shared US file ``copies`` times, each copy with new study/series/SOP UIDs."""
    count = 0
    for source in sorted(shared_us_folder().glob("*.dcm")):
        template = pydicom.dcmread(source)
        try:
            template.pixel_array  # noqa: B018 - keep only files this machine decodes
        except Exception:
            print(f"skipping undecodable {source.name}")
            continue
        for copy in range(copies):
            ds = pydicom.dcmread(source)
            ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(target / f"{source.stem}_{copy:03d}.dcm")
            count += 1
    return count


def floor(files: list[Path], frames_of: dict[str, list[int]], outdir: Path) -> tuple[float, int]:
    """Plain pydicom: read, pixel_array, write the same frames as PNG."""
    start = time.perf_counter()
    written = 0
    for path in files:
        arr = pydicom.dcmread(path).pixel_array
        indices = frames_of[path.name]
        multi = arr.ndim == 4 or (arr.ndim == 3 and arr.shape[-1] not in (3, 4))
        for index in indices:
            frame = arr[index] if multi else arr
            if frame.dtype != np.uint8:
                frame = (frame >> max(0, int(frame.max()).bit_length() - 8)).astype(np.uint8)
            if frame.ndim == 2:
                frame = np.repeat(frame[..., None], 3, axis=2)
            write_png(outdir / f"{path.stem}_f{index:04d}.png", np.ascontiguousarray(frame[..., :3]))
            written += 1
    return time.perf_counter() - start, written


OCR_OFF = ProcessOptions(ocr=False)
OCR_ON = ProcessOptions(ocr=True)


def pipeline(
    source: Path, outdir: Path, executor, key: Path, options: ProcessOptions = OCR_OFF
) -> tuple[float, int, int]:
    start = time.perf_counter()
    summary = run_batch(source, outdir, options, deid_key=key, executor=executor)
    seconds = time.perf_counter() - start
    if summary.failed:
        sys.exit(f"pipeline failed on {summary.failed} files; see {outdir / 'errors.jsonl'}")
    if options.ocr:
        cleaning = summary.pixel_cleaning
        print(
            f"OCR: {cleaning['mode']}; {cleaning['ocr_frames']} frames OCR'd in {cleaning['ocr_seconds']:.1f} s "
            f"= {cleaning['ocr_seconds_per_frame']} s/frame; {cleaning['text_boxes']} text boxes masked"
        )
    return seconds, summary.processed, summary.frames


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--copies", type=int, default=31, help="copies of each decodable file (13 x 31 = 403)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per setting; the best is kept")
    parser.add_argument(
        "--ocr-copies", type=int, default=1, help="copies of each file for the OCR-on run (0: skip it)"
    )
    parser.add_argument(
        "--ocr-only", action="store_true", help="only the floor and the OCR-on run (no OCR-off rounds)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ultra-dicom-bench-"))
    try:
        if args.ocr_only:
            run_ocr_only(work, args.ocr_copies or 1)
        else:
            run(work, args.copies, args.rounds, args.ocr_copies)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, copies: int, rounds: int, ocr_copies: int) -> None:
    source = work / "source"
    source.mkdir()
    total = build_corpus(source, copies)
    if total < 400:
        sys.exit(f"only {total} instances; raise --copies")
    key = work / "deid.key"
    key.write_text("benchmark-key-0123456789abcdef0123")
    files = sorted(source.glob("*.dcm"))
    # The frames each file yields do not depend on the key or UIDs, only on the frame count.
    counts = {
        p.name: int(pydicom.dcmread(p, stop_before_pixels=True).get("NumberOfFrames", 1) or 1) for p in files
    }
    from ultra.dicom.process import sample_frame_indices

    frames_of = {
        name: sample_frame_indices(n, ProcessOptions().frames_per_cine) for name, n in counts.items()
    }
    results: dict[str, tuple[float, int, int]] = {}
    pools = {workers: make_pool(workers) for workers in (1, 2)}
    try:
        for workers, executor in pools.items():  # warm: start workers and import everything once
            warm = work / "warm"
            warm.mkdir(exist_ok=True)
            shutil.copy(files[0], warm / "a.dcm")
            for _ in range(workers * 2):
                run_batch(
                    warm, work / f"warm_out_{workers}_{_}", ProcessOptions(), deid_key=key, executor=executor
                )
        ceilings = []
        for round_ in range(rounds):
            ceilings.append(machine_parallelism(pools))
            out = work / f"floor_{round_}"
            seconds, written = floor(files, frames_of, out)
            _keep_best(results, "floor (dcmread + pixel_array + PNG)", (seconds, len(files), written))
            shutil.rmtree(out)
            for workers, executor in pools.items():
                out = work / f"pipe_{workers}_{round_}"
                _keep_best(results, f"ultra dicom, {workers} worker(s)", pipeline(source, out, executor, key))
                shutil.rmtree(out)
        if ocr_copies:
            ocr_copies = min(ocr_copies, copies)
            ocr_results = ocr_run(work, ocr_copies, frames_of, pools[1], key)
    finally:
        for executor in pools.values():
            executor.shutdown()
    report(results, total, rounds, ceilings)
    if ocr_copies:
        (floor_s, _, _), (ocr_s, files, frames) = ocr_results
        print(
            f"OCR on, 1 worker, {files} instances / {frames} frames: {ocr_s:.2f} s = {ocr_s / floor_s:.2f}x "
            f"the floor's {floor_s:.2f} s on the same files"
        )


def run_ocr_only(work: Path, copies: int) -> None:
    """The OCR-on row alone: floor and one worker with OCR on, over the same files."""
    from ultra.dicom.process import sample_frame_indices

    key = work / "deid.key"
    key.write_text("benchmark-key-0123456789abcdef0123")
    probe = work / "probe"
    probe.mkdir()
    build_corpus(probe, 1)
    frames_of = {}
    for path in probe.glob("*.dcm"):
        count = int(pydicom.dcmread(path, stop_before_pixels=True).get("NumberOfFrames", 1) or 1)
        for copy in range(copies):
            frames_of[path.name.replace("_000.dcm", f"_{copy:03d}.dcm")] = sample_frame_indices(
                count, ProcessOptions().frames_per_cine
            )
    executor = make_pool(1)
    try:
        warm = work / "warm"
        warm.mkdir()
        shutil.copy(sorted(probe.glob("*.dcm"))[0], warm / "a.dcm")
        run_batch(warm, work / "warm_out", OCR_ON, deid_key=key, executor=executor)  # loads the detector
        (floor_s, _, _), (ocr_s, files, frames) = ocr_run(work, copies, frames_of, executor, key)
    finally:
        executor.shutdown()
    print(
        f"OCR on, 1 worker, {files} instances / {frames} frames: {ocr_s:.2f} s = {ocr_s / floor_s:.2f}x "
        f"the floor's {floor_s:.2f} s on the same files"
    )


def ocr_run(
    work: Path, copies: int, frames_of: dict[str, list[int]], executor, key: Path
) -> tuple[tuple[float, int, int], tuple[float, int, int]]:
    """Floor and pipeline with OCR on, over a smaller corpus (OCR costs about a second a frame)."""
    source = work / "source_ocr"
    source.mkdir()
    build_corpus(source, copies)
    files = sorted(source.glob("*.dcm"))
    seconds, written = floor(files, frames_of, work / "floor_ocr")  # same names as the main corpus
    return (seconds, len(files), written), pipeline(source, work / "pipe_ocr", executor, key, OCR_ON)


def _burn(n: int) -> int:
    total = 0
    for value in range(n):
        total += value * value
    return total


def machine_parallelism(executors: dict) -> float:
    """Throughput of a pure-Python CPU burn on 2 workers over 1 worker, measured now: the ceiling
    for the 2-worker target on a shared machine (2.0 on two idle cores)."""
    seconds = {}
    for workers, executor in executors.items():
        start = time.perf_counter()
        list(executor.map(_burn, [2_000_000] * 8))
        seconds[workers] = time.perf_counter() - start
    return seconds[1] / seconds[2]


def _keep_best(results: dict, name: str, value: tuple[float, int, int]) -> None:
    if name not in results or value[0] < results[name][0]:
        results[name] = value


def report(
    results: dict[str, tuple[float, int, int]], total: int, rounds: int, ceilings: list[float]
) -> None:
    floor_s = results["floor (dcmread + pixel_array + PNG)"][0]
    one = results["ultra dicom, 1 worker(s)"]
    print(f"\n{total} instances, best of {rounds} round(s), {os.cpu_count()} CPUs visible")
    print(
        f"{'setting':40s} {'seconds':>8s} {'files/s':>8s} {'frames/s':>9s} {'time/floor':>11s} {'vs 1 worker':>12s}"
    )
    for name, (seconds, files, frames) in results.items():
        speedup = (one[0] / seconds) if "worker" in name else float("nan")
        print(
            f"{name:40s} {seconds:8.2f} {files / seconds:8.1f} {frames / seconds:9.1f} "
            f"{seconds / floor_s:10.2f}x {speedup:11.2f}x"
        )
    two = results["ultra dicom, 2 worker(s)"]
    print(
        f"\ntarget: 1 worker <= 1.30x floor time -> {one[0] / floor_s:.2f}x ({'met' if one[0] / floor_s <= 1.3 else 'NOT met'})"
    )
    speed = one[0] / two[0]
    print(
        f"target: 2 workers >= 1.60x 1 worker throughput -> {speed:.2f}x ({'met' if speed >= 1.6 else 'NOT met'})"
    )
    ceiling = ", ".join(f"{c:.2f}x" for c in ceilings)
    print(f"machine ceiling now (pure CPU burn, 2 vs 1 worker, per round): {ceiling}")


if __name__ == "__main__":
    main()
