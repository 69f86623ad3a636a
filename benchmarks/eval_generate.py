"""Time per 100 questions of ``ultra eval generate``: batched against one question at a time.

Both runs answer the same BUSI-zh questions (images shown) with the same model in one process,
into fresh answers files, after a warm-up batch. Batch sizes are interleaved over ``--rounds``
rounds and the fastest round of each is kept, so load from other processes on a shared machine
hits every batch size alike. The table gives seconds per 100 questions and the speed-up of each
batch size over batch size 1.

    python -m benchmarks.eval_generate [--model debug-tiny] [--questions 100] [--batch-sizes 1 8 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from ultra.answerer import Answerer
from ultra.eval.generate import generate_answers_file

REPO = Path(__file__).resolve().parents[1]


def busi_questions(count: int):
    from data_zh.builders import build_busi_vqa

    root = Path(os.environ.get("ULTRA_SHARED_DATA", REPO.parent / "shared" / "data")) / "busi"
    if not root.is_dir():
        sys.exit(f"BUSI not found at {root} (set ULTRA_SHARED_DATA)")
    records = build_busi_vqa(root, "val")
    return (records * (count // len(records) + 1))[:count] if count > len(records) else records[:count]


def timed_run(answerer, records, batch_size: int, max_new_tokens: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        report = generate_answers_file(
            answerer,
            records,
            Path(folder) / "answers.jsonl",
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            show_progress=False,
        )
        elapsed = time.perf_counter() - start
    assert report.answered == len({r.id for r in records})
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="debug-tiny", help="preset or model folder (tiny-zh = embedded)")
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    torch.manual_seed(0)
    answerer = Answerer.load(args.model, device=args.device, allow_untrained=True)
    records = busi_questions(args.questions)
    timed_run(answerer, records[:8], 8, args.max_new_tokens)  # warm-up
    sizes = sorted(set(args.batch_sizes) | {1})
    seconds = {size: float("inf") for size in sizes}
    for _ in range(args.rounds):
        for size in sizes:
            seconds[size] = min(seconds[size], timed_run(answerer, records, size, args.max_new_tokens))
    per100 = {size: 100 * s / len(records) for size, s in seconds.items()}
    print(
        f"\nmodel={args.model} device={args.device} questions={len(records)} "
        f"max_new_tokens={args.max_new_tokens} torch threads={torch.get_num_threads()} "
        f"best of {args.rounds} interleaved rounds\n"
    )
    print("| batch size | total s | s / 100 questions | speed-up vs batch 1 |")
    print("| --- | --- | --- | --- |")
    for size in sizes:
        print(f"| {size} | {seconds[size]:.2f} | {per100[size]:.2f} | {per100[1] / per100[size]:.2f}x |")


if __name__ == "__main__":
    main()
