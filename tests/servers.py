"""Starting the real ``ultra`` servers of the serving tests: a subprocess on a free loopback port,
waited for until it answers, stopped (and its output shown) at the end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(
    args: list[str], ready_url: str, log: Path, timeout_s: float = 180.0, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """``python -m ultra ARGS`` until the block ends; fails with the server's output if it never
    answers ``ready_url``."""
    base = {"PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env = {**os.environ, **base, **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ultra", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {process.returncode}:\n{log.read_text(errors='replace')}"
                )
            try:
                if httpx.get(ready_url, timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"server not ready after {timeout_s} s:\n{log.read_text(errors='replace')}"
                )
            time.sleep(0.3)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)  # what a service manager sends
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
