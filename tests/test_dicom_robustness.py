"""``ultra dicom`` against what a real file system and a real operator bring: huge frames, pipes,
devices, sparse files, names that are not UTF-8, lists that repeat or miss entries, a batch killed
mid-run, and header values that must never reach ``errors.jsonl`` or ``run.log``.

The full-size memory case (15 frames of 8000x8000) is ``benchmarks/dicom_memory.py``; here the
RLE instance is small and the bound is on the bytes Python allocates while processing it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pydicom
import pytest
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from benchmarks.dicom_memory import write_rle_instance
from ultra.cli.main import app
from ultra.dicom import ProcessOptions, make_pool, run_batch
from ultra.dicom.errors import DicomReadError
from ultra.dicom.process import process_input
from ultra.dicom.sources import InputItem, input_id, list_inputs, read_input_file
from ultra.media.dicom import decode_frame_rgb

KEY = b"robustness-test-key-0123456789ab"
NOT_UTF8 = os.fsdecode(b"patient-\xff\xfe.dcm")


@pytest.fixture(scope="module")
def pool() -> Iterator:
    executor = make_pool(1)
    yield executor
    executor.shutdown()


@pytest.fixture(scope="module")
def us_file(shared_data: Path) -> Path:
    return shared_data / "dicom" / "us" / "US1_UNCR.dcm"


@pytest.fixture()
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "deid.key"
    path.write_bytes(KEY)
    return path


def _copy_as_new_instance(us_file: Path, path: Path, **changes: str) -> Path:
    """``us_file`` under ``path`` with new UIDs (not a duplicate) and ``changes`` to its header."""
    ds = pydicom.dcmread(us_file)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


def _errors(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "errors.jsonl").read_text(encoding="utf-8").splitlines()]
    return {row["id"]: row for row in rows}


# --- (a) a huge multi-frame instance is processed one frame at a time ------------------------------


def test_a_large_rle_cine_is_decoded_and_written_frame_by_frame(tmp_path: Path) -> None:
    rows = columns = 1536
    frames = 40
    source = write_rle_instance(tmp_path / "cine.dcm", rows, columns, frames)
    item = InputItem(input_id("cine.dcm", KEY), "cine.dcm", path=str(source))
    options = ProcessOptions(ocr=False, write_dicom=True, frame_cache_mb=0)
    whole_rgb = frames * rows * columns * 3  # what decoding every frame at once holds (283 MB)
    decode_frame_rgb(pydicom.dcmread(source), 0)  # the decoders' modules load outside the count
    tracemalloc.start()
    try:
        outcome = process_input(item, str(tmp_path / "out"), options, KEY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.status == "processed", outcome.reason
    # One frame decoded, masked and written at a time: far below the instance, and below even its
    # native 8-bit pixel data (94 MB), which a written file built in memory would hold whole.
    assert peak < frames * rows * columns / 2, f"peak {peak / 1e6:.0f} MB of Python allocations"
    assert peak < whole_rgb / 4
    written = pydicom.dcmread(tmp_path / "out" / outcome.record["dicom"])
    assert (int(written.NumberOfFrames), written.Rows, written.Columns) == (frames, rows, columns)
    assert written.PhotometricInterpretation == "MONOCHROME2" and written.BitsAllocated == 8
    original = pydicom.dcmread(source)
    for index in (0, frames // 2, frames - 1):
        out_frame = pydicom.pixels.pixel_array(written, index=index)
        in_frame = pydicom.pixels.pixel_array(original, index=index)
        centre = (slice(rows // 3, 2 * rows // 3), slice(columns // 3, 2 * columns // 3))
        assert np.array_equal(out_frame[centre], in_frame[centre])  # the scan is kept as it was
    assert "PatientName" not in written or str(written.PatientName) != "Huge^Cine"


# --- (b) only regular files are read, and their size is checked first --------------------------------


def test_a_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(DicomReadError, match="not a regular file"):
        read_input_file(str(fifo), "in-pipe")
    with pytest.raises(DicomReadError, match="not a regular file"):
        read_input_file("/dev/zero", "in-zero")
    assert time.monotonic() - start < 2


def test_pipes_devices_and_sparse_files_in_a_list_each_get_a_reason(
    tmp_path: Path, us_file: Path, key_file: Path, pool
) -> None:
    src = tmp_path / "src"
    _copy_as_new_instance(us_file, src / "good.dcm")
    os.mkfifo(src / "pipe.dcm")
    with (src / "sparse.dcm").open("wb") as handle:
        handle.truncate(1_600_000_000)  # 1.6 GB that occupy no disk; reading it whole would
    (src / "folder").mkdir()
    names = ["good.dcm", "pipe.dcm", "/dev/zero", "sparse.dcm", "missing.dcm", "folder"]
    listing = src / "list.txt"
    listing.write_text("\n".join(names) + "\n")
    start = time.monotonic()
    summary = run_batch(listing, tmp_path / "out", ProcessOptions(ocr=False), deid_key=key_file, executor=pool)
    assert time.monotonic() - start < 30
    errors = _errors(tmp_path / "out")
    reasons = {name: errors[input_id(name, KEY)]["reason"] for name in names[1:]}
    assert reasons["pipe.dcm"] == reasons["/dev/zero"] == "not a regular file (device, pipe or socket)"
    assert "exceed the limit" in reasons["sparse.dcm"] and "1,600,000,000 bytes" in reasons["sparse.dcm"]
    assert reasons["missing.dcm"] == "listed file not found"
    assert reasons["folder"].startswith("a folder, not a file")
    assert (summary.inputs, summary.processed) == (6, 1)


# --- (c) names are bytes: one that is not UTF-8 is an input like any other ----------------------------


def test_a_name_that_is_not_utf8_is_processed_and_located(
    tmp_path: Path, us_file: Path, key_file: Path, pool
) -> None:
    src = tmp_path / "src"
    _copy_as_new_instance(us_file, src / NOT_UTF8)
    _copy_as_new_instance(us_file, src / "plain.dcm")
    summary = run_batch(src, tmp_path / "out", ProcessOptions(ocr=False), deid_key=key_file, executor=pool)
    assert (summary.inputs, summary.processed, summary.failed) == (2, 2, 0)
    wanted = input_id(NOT_UTF8, KEY)
    assert wanted == input_id(os.fsdecode(os.fsencode(NOT_UTF8)), KEY)
    assert [item.id for item in list_inputs(src, KEY)].count(wanted) == 1
    result = CliRunner().invoke(app, ["dicom-locate", wanted, str(src), "--deid-key", str(key_file)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "patient-\\xff\\xfe.dcm"
    listing = tmp_path / "list.txt"
    listing.write_bytes(os.fsencode(src / NOT_UTF8) + b"\n")
    (item,) = list_inputs(listing, KEY)
    assert item.problem is None and Path(item.path or "").is_file()


# --- (d) nothing is dropped without a trace, and every line of a list has its own id -----------------


def test_dicomdir_repeats_and_missing_entries_are_each_listed(
    tmp_path: Path, us_file: Path, key_file: Path, pool
) -> None:
    src = tmp_path / "src"
    _copy_as_new_instance(us_file, src / "a.dcm")
    shutil.copy(us_file, src / "DICOMDIR")
    summary = run_batch(src, tmp_path / "out-folder", ProcessOptions(ocr=False), deid_key=key_file, executor=pool)
    assert (summary.inputs, summary.processed, summary.skipped) == (2, 1, 1)
    dicomdir = _errors(tmp_path / "out-folder")[input_id("DICOMDIR", KEY)]
    assert dicomdir["status"] == "skipped" and "DICOMDIR" in dicomdir["reason"]

    listing = tmp_path / "list.txt"
    listing.write_text(f"{src / 'a.dcm'}\n{src / 'a.dcm'}\n{src}/./a.dcm\n{src / 'gone.dcm'}\n")
    items = list_inputs(listing, KEY)
    assert len({item.id for item in items}) == 4  # the same line twice gets two ids
    summary = run_batch(listing, tmp_path / "out-list", ProcessOptions(ocr=False), deid_key=key_file, executor=pool)
    assert (summary.inputs, summary.processed, summary.skipped, summary.failed) == (4, 1, 2, 1)
    errors = _errors(tmp_path / "out-list")
    first = items[0].id
    assert [errors[item.id]["reason"] for item in items[1:]] == [
        f"listed again (the same file as {first})",
        f"listed again (the same file as {first})",
        "listed file not found",
    ]
    assert not any("unexpected error" in row["reason"] for row in errors.values())


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_says_so(tmp_path: Path, us_file: Path, key_file: Path, pool) -> None:
    src = tmp_path / "src"
    locked = _copy_as_new_instance(us_file, src / "locked.dcm")
    locked.chmod(0)
    try:
        run_batch(src, tmp_path / "out", ProcessOptions(ocr=False), deid_key=key_file, executor=pool)
    finally:
        locked.chmod(stat.S_IRUSR | stat.S_IWUSR)
    reason = _errors(tmp_path / "out")[input_id("locked.dcm", KEY)]["reason"]
    assert reason == "cannot open file (Permission denied)"


# --- (e) workers end with the batch process --------------------------------------------------------


def _tree(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_killing_the_batch_ends_its_whole_process_tree(
    tmp_path: Path, us_file: Path, key_file: Path, how: signal.Signals
) -> None:
    src = tmp_path / "src"
    for index in range(60):
        _copy_as_new_instance(us_file, src / f"copy{index:03d}.dcm")
    out = tmp_path / "out"
    command = [str(Path(sys.executable).with_name("ultra")), "dicom", str(src), str(out)]
    command += ["--workers", "2", "--no-ocr", "--deid-key", str(key_file)]
    batch = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (out / "images").is_dir() or len(_tree(batch.pid)) < 4:  # forkserver, tracker, 2 workers
            assert batch.poll() is None and time.monotonic() < deadline, "the batch never got going"
            time.sleep(0.05)
        tree = _tree(batch.pid)
        batch.send_signal(how)
        batch.wait(timeout=20)
        deadline = time.monotonic() + 5
        while any(_alive(proc) for proc in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [f"{proc.pid} {' '.join(proc.cmdline())[:80]}" for proc in tree if _alive(proc)]
        assert not survivors, survivors
        written = sum(1 for _ in out.rglob("*"))
        time.sleep(0.5)
        assert sum(1 for _ in out.rglob("*")) == written  # nobody is still writing
        assert len(list((out / "images").rglob("*.png"))) < 60  # it was stopped mid-run
    finally:
        if batch.poll() is None:
            batch.kill()
        for proc in _tree(batch.pid):
            proc.kill()


# --- (f) no header value in errors.jsonl or run.log -------------------------------------------------

# Every VR whose value is free text (numbers, dates and UIDs could not hold the marker).
_STRING_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}


def _plant(ds: pydicom.Dataset, marker: str) -> None:
    """The marker in every text element of ``ds`` (nested ones too)."""
    for elem in ds.iterall():
        if elem.VR in _STRING_VRS:
            elem.value = marker


def test_header_values_never_reach_errors_or_the_log(
    tmp_path: Path, us_file: Path, key_file: Path, pool
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    other = pydicom.dcmread(us_file)
    other.SOPInstanceUID = generate_uid()
    _plant(other, "MARKERMODALITY7Q")  # Modality too: skipped as not ultrasound
    other.save_as(src / "other.dcm")
    failing = pydicom.dcmread(us_file)
    failing.SOPInstanceUID = generate_uid()
    _plant(failing, "MARKERFAILS3Z")
    failing.Modality = "US"  # reaches decoding, where the planted Photometric Interpretation fails it
    failing.save_as(src / "fails.dcm")
    out = tmp_path / "out"
    summary = run_batch(src, out, ProcessOptions(ocr=False), deid_key=key_file, executor=pool)
    assert (summary.skipped, summary.failed) == (1, 1)
    errors = _errors(out)
    assert errors[input_id("other.dcm", KEY)]["reason"] == "modality is not US"
    assert errors[input_id("fails.dcm", KEY)]["reason"]  # a reason, only without the value
    for path in [*out.rglob("*")]:
        if path.is_file():
            text = path.read_bytes()
            assert b"MARKER" not in text, f"{path.relative_to(out)} holds a header value"
