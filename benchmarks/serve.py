"""``ultra serve`` throughput: requests/s, tokens/s and p50/p95 latency at concurrency 1, 4 and 16,
dynamic batching on (``--max-batch 16``) vs off (``--max-batch 1``).

Two real servers (the embedded ``ultra-tiny-zh``, fp32, greedy) on loopback ports; the client runs
in a separate process (``--client``) so its threads do not compete with the server's in one
interpreter. Rounds interleave the two servers and every concurrency, and each cell keeps its best
round (machines are noisy). The ratio column is batching-on over batching-off requests/s at the
same concurrency.

    python -m benchmarks.serve [--rounds 3] [--requests-per-client 8] [--max-tokens 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "ultra" / "examples" / "busi").glob("*.png"))
# Questions the embedded model answers in a sentence (10-13 tokens), not a word: decoding, which
# batching shares, then weighs as it does for real models' longer answers.
QUESTIONS = ["What does this image show?", "描述病灶的形态、边界、回声和血流。"]
MODES = {
    "on": ["--max-batch", "16", "--batch-wait-ms", "50"],
    "off": ["--max-batch", "1", "--batch-wait-ms", "0"],
}


def run_client(url: str, concurrency: int, count: int, max_tokens: int) -> dict:
    """``count`` requests from ``concurrency`` threads; wall time, latencies, completion tokens."""
    import httpx

    bodies = [
        {
            "model": "ultra-tiny-zh",
            "max_tokens": max_tokens,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": QUESTIONS[i % len(QUESTIONS)]},
                        {
                            "type": "image_url",
                            "image_url": {
                                "url": "data:image/png;base64,"
                                + base64.b64encode(EXAMPLES[i % len(EXAMPLES)].read_bytes()).decode()
                            },
                        },
                    ],
                }
            ],
        }
        for i in range(count)
    ]
    http = httpx.Client(timeout=300, limits=httpx.Limits(max_connections=concurrency))

    def one(body: dict) -> tuple[float, int]:
        start = time.perf_counter()
        response = http.post(url + "/v1/chat/completions", json=body)
        response.raise_for_status()
        return time.perf_counter() - start, response.json()["usage"]["completion_tokens"]

    one(bodies[0])  # warm the connection and the server's first-call paths
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, bodies))
    wall = time.perf_counter() - start
    return {"wall": wall, "latencies": [r[0] for r in results], "tokens": sum(r[1] for r in results)}


def _batching(url: str) -> dict:
    import httpx

    return httpx.get(url + "/health", timeout=30).json()["batching"]


def measure(url: str, concurrency: int, count: int, max_tokens: int) -> dict:
    before = _batching(url)
    command = [sys.executable, "-m", "benchmarks.serve", "--client", url]
    command += ["--concurrency", str(concurrency), "--count", str(count), "--max-tokens", str(max_tokens)]
    out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    latencies = np.array(result["latencies"])
    after = _batching(url)
    return {
        "batch": (after["requests"] - before["requests"]) / max(1, after["batches"] - before["batches"]),
        "rps": count / result["wall"],
        "tps": result["tokens"] / result["wall"],
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests-per-client", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each server")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(run_client(args.client, args.concurrency[0], args.count, args.max_tokens)))
        return

    from tests.servers import free_port, running

    best: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        urls = {}
        for mode, flags in MODES.items():
            port = free_port()
            urls[mode] = f"http://127.0.0.1:{port}"
            args_ = ["serve", "--port", str(port), *flags]
            threads = {"OMP_NUM_THREADS": str(args.threads)}
            stack.enter_context(
                running(args_, urls[mode] + "/health", Path(tmp) / f"{mode}.log", env=threads)
            )
        for round_index in range(args.rounds):
            for concurrency in args.concurrency:
                count = max(8, concurrency * args.requests_per_client)
                for mode in ("on", "off") if round_index % 2 == 0 else ("off", "on"):
                    cell = measure(urls[mode], concurrency, count, args.max_tokens)
                    if (mode, concurrency) not in best or cell["rps"] > best[(mode, concurrency)]["rps"]:
                        best[(mode, concurrency)] = cell
            print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)

    table = Table(
        title=f"ultra serve, ultra-tiny-zh fp32 greedy on CPU ({args.threads} torch thread(s) per server), "
        f"max_tokens {args.max_tokens}, "
        f"best of {args.rounds} interleaved rounds"
    )
    columns = (
        "concurrency",
        "batching",
        "mean batch",
        "requests/s",
        "tokens/s",
        "p50 s",
        "p95 s",
        "req/s on ÷ off",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for concurrency in args.concurrency:
        for mode in ("off", "on"):
            cell = best[(mode, concurrency)]
            ratio = cell["rps"] / best[("off", concurrency)]["rps"]
            table.add_row(
                str(concurrency),
                mode,
                f"{cell['batch']:.1f}",
                f"{cell['rps']:.1f}",
                f"{cell['tps']:.0f}",
                f"{cell['p50']:.3f}",
                f"{cell['p95']:.3f}",
                f"{ratio:.2f}x",
            )
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
