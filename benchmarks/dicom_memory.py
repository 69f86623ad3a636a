"""Peak memory of ``ultra dicom --write-dicom`` on a huge multi-frame RLE instance.

The instance is built from RLE runs directly (no frame is ever held decoded here): by default 15
frames of 8000x8000 8-bit MONOCHROME2, about 15 MB on disk and 0.96e9 pixels, inside the 1e9-pixel
limit, so it must be processed, not refused. The real CLI runs it in a subprocess while the
resident memory of its whole process tree (the batch process, the forkserver, the resource tracker
and the workers) is sampled; the peak of the sum of RSS (shared pages counted in every process, an
upper bound) and of PSS (shared pages split) is printed with the wall time. Target: peak RSS of the
tree <= 2 GB.

    python -m benchmarks.dicom_memory [--frames 15] [--size 8000] [--ocr] [--interval 0.05]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless, UltrasoundMultiFrameImageStorage, generate_uid

TARGET_BYTES = 2 * 1024**3
_MAX_RUN = 128


def packbits_run(value: int, length: int) -> bytes:
    """``length`` copies of the byte ``value`` as RLE (PackBits) runs of at most 128 bytes."""
    full, rest = divmod(length, _MAX_RUN)
    out = bytes([257 - _MAX_RUN, value]) * full
    if rest == 1:
        out += bytes([0, value])  # a literal run of one byte
    elif rest:
        out += bytes([257 - rest, value])
    return out


def rle_frame(rows: int, columns: int, frame: int) -> bytes:
    """One RLE frame (one segment, 8-bit grey): a dark border, a bright scan area whose level
    changes row by row and frame by frame, and a white bar (a line of text's size) near the top."""
    border = columns // 8
    scan = columns - 2 * border
    bar = range(rows // 40, rows // 40 + max(2, rows // 400))
    segment = bytearray()
    for row in range(rows):
        level = 60 + (row * 7 + frame * 13) % 150
        if row in bar:
            segment += packbits_run(0, border) + packbits_run(255, scan // 3) + packbits_run(0, columns - border - scan // 3)
        elif border <= row < rows - border:
            segment += packbits_run(0, border) + packbits_run(level, scan) + packbits_run(0, border)
        else:
            segment += packbits_run(0, columns)
    if len(segment) % 2:
        segment += b"\x00"
    header = (1).to_bytes(4, "little") + (64).to_bytes(4, "little") + bytes(56)
    return header + bytes(segment)


def write_rle_instance(path: Path, rows: int, columns: int, frames: int) -> Path:
    """An ultrasound multi-frame instance of ``frames`` RLE frames with a patient header."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = RLELossless
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "US"
    ds.PatientName, ds.PatientID = "Huge^Cine", "MEM-0001"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([rle_frame(rows, columns, index) for index in range(frames)])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def _role(cmdline: list[str], parent: int, root: int) -> str:
    """What a process of the tree is (workers carry the forkserver's command line, one level down)."""
    text = " ".join(cmdline)
    if parent != root:
        return "worker"
    if "forkserver" in text:
        return "forkserver"
    return "resource tracker" if "resource_tracker" in text else "other"


def tree_memory(pid: int, peaks: dict[int, tuple[str, int]]) -> tuple[int, int, int]:
    """(sum of RSS, sum of PSS, processes) of ``pid`` and all its descendants now; each process's
    role and own peak RSS are kept in ``peaks`` by pid."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0, 0
    rss = pss = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
            role = "batch process" if proc.pid == pid else _role(proc.cmdline(), proc.ppid(), pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        peaks[proc.pid] = (role, max(peaks.get(proc.pid, ("", 0))[1], info.rss))
    return rss, pss, len(procs)


def run_cli(source: Path, out: Path, key: Path, ocr: bool, interval: float) -> dict[str, object]:
    """Run ``ultra dicom`` on ``source`` and sample its tree's memory until it exits."""
    command = [str(Path(sys.executable).with_name("ultra")), "dicom", str(source), str(out)]
    command += ["--write-dicom", "--deid-key", str(key)] + ([] if ocr else ["--no-ocr"])
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_rss = peak_pss = most = 0
    peaks: dict[int, tuple[str, int]] = {}
    while proc.poll() is None:
        rss, pss, count = tree_memory(proc.pid, peaks)
        peak_rss, peak_pss, most = max(peak_rss, rss), max(peak_pss, pss), max(most, count)
        time.sleep(interval)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode:
        print(stderr[-2000:], file=sys.stderr)
    return {
        "rc": proc.returncode,
        "seconds": seconds,
        "rss": peak_rss,
        "pss": peak_pss,
        "processes": most,
        "peaks": peaks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=15)
    parser.add_argument("--size", type=int, default=8000, help="rows = columns")
    parser.add_argument("--ocr", action="store_true", help="OCR on (the default of the CLI when installed)")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between samples")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ultra-dicom-memory-") as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        source = write_rle_instance(root / "src" / "huge_rle.dcm", args.size, args.size, args.frames)
        key = root / "deid.key"
        key.write_text("memory-benchmark-key-0123456789")
        out = root / "out"
        result = run_cli(root / "src", out, key, args.ocr, args.interval)
        written = sorted((out / "dicom").rglob("*.dcm")) if (out / "dicom").is_dir() else []
        gib = 1024**3
        print(f"input: {args.frames} frames x {args.size}x{args.size} RLE, {source.stat().st_size / 1e6:.1f} MB")
        print("| case | exit | seconds | peak tree RSS | peak tree PSS | processes | written DICOM |")
        print("|---|---|---|---|---|---|---|")
        size = f"{written[0].stat().st_size / 1e9:.2f} GB" if written else "none"
        print(
            f"| --write-dicom{' (OCR)' if args.ocr else ' --no-ocr'} | {result['rc']} | {result['seconds']:.1f} "
            f"| {result['rss'] / gib:.2f} GiB | {result['pss'] / gib:.2f} GiB | {result['processes']} | {size} |"
        )
        for pid, (role, peak) in sorted(result["peaks"].items(), key=lambda kv: -kv[1][1]):
            print(f"  {role} (pid {pid}): peak RSS {peak / 2**20:.0f} MiB")
        ok = result["rc"] == 0 and bool(written) and result["rss"] <= TARGET_BYTES
        print(f"target peak tree RSS <= {TARGET_BYTES / gib:.0f} GiB: {'met' if ok else 'NOT met'}")
        return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
