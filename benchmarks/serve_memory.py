"""``ultra serve`` memory under large images: peak and idle RSS of the server's process tree.

A real server (the embedded ``ultra-tiny-zh``) on a loopback port gets requests of eight
7999x7999 images sent as ``data:`` URLs (each about 200 KB encoded, 64 M pixels decoded, just
under the 64 M-pixel limit): one request, then three at once, as PNG and as JPEG. RSS of the server
and its children is sampled every 20 ms; "held when idle" is read 3 s after the last answer.

    python -m benchmarks.serve_memory [--side 7999] [--images 8] [--concurrent 3]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import io
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table

MB = 1 << 20
EXAMPLE = Path(__file__).resolve().parents[1] / "ultra" / "examples" / "busi" / "benign-1.png"


def large_image(side: int, fmt: str) -> bytes:
    """A mostly flat grey frame with a few shapes: small encoded, ``side``² pixels decoded."""
    image = Image.new("RGB", (side, side), (40, 40, 40))
    draw = ImageDraw.Draw(image)
    for index in range(6):
        step = side // 8
        draw.ellipse((step * index, step, step * index + step, 2 * step), fill=(200, 120 + index * 20, 90))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 70} if fmt == "JPEG" else {"compress_level": 9}))
    return buffer.getvalue()


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


class PeakSampler:
    """Samples the tree's RSS in a thread while a block runs; ``peak`` is the largest sample."""

    def __init__(self, process: psutil.Process, every_s: float = 0.02) -> None:
        self.process = process
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.process))
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.process))


def body(images: list[bytes], mime: str) -> dict:
    parts = [{"type": "text", "text": "这些图像中是否有病灶？"}]
    for data in images:
        url = f"data:{mime};base64," + base64.b64encode(data).decode()
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return {"model": "ultra-tiny-zh", "max_tokens": 4, "messages": [{"role": "user", "content": parts}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=7999)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--concurrent", type=int, default=3)
    parser.add_argument("--serve-args", nargs="*", default=[], help="extra flags for ultra serve")
    args = parser.parse_args()

    from tests.servers import free_port, running

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rows: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        flags = ["serve", "--port", str(port), "--max-images", str(args.images), *args.serve_args]
        with running(flags, url + "/health", Path(tmp) / "server.log") as server:
            process = psutil.Process(server.pid)
            http = httpx.Client(timeout=600)
            small = body([EXAMPLE.read_bytes()], "image/png")
            http.post(url + "/v1/chat/completions", json=small).raise_for_status()  # warm paths
            time.sleep(1.0)
            idle = tree_rss(process)
            rows.append(("idle after one small request", "200", idle / MB, 0.0))

            def send(payload: dict) -> Callable[[], int]:
                return lambda: http.post(url + "/v1/chat/completions", json=payload).status_code

            for fmt, mime in (("PNG", "image/png"), ("JPEG", "image/jpeg")):
                encoded = large_image(args.side, fmt)
                payload = body([encoded] * args.images, mime)
                size = f"{args.images} {fmt} {args.side}x{args.side} ({len(encoded) // 1024} KB each)"
                for count in (1, args.concurrent):
                    with PeakSampler(process) as sampler, concurrent.futures.ThreadPoolExecutor(count) as pool:
                        statuses = sorted(pool.map(lambda f: f(), [send(payload)] * count))
                    label = f"{count} request(s) at once, {size}"
                    rows.append((label, ",".join(map(str, statuses)), sampler.peak / MB, (sampler.peak - idle) / MB))
                    time.sleep(3.0)
                    held = tree_rss(process)
                    rows.append(("  held when idle 3 s later", "", held / MB, (held - idle) / MB))

    table = Table(title=f"ultra serve memory (RSS of the server's process tree), {' '.join(args.serve_args)}")
    for column in ("case", "statuses", "peak RSS MB", "over idle MB"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for label, statuses, peak, growth in rows:
        table.add_row(label, statuses, f"{peak:,.0f}", f"{growth:+,.0f}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
