"""Cost of VisionFusion against the encoders it fuses: images/s, peak RSS, fused / sum ratio.

Each configuration (tiny or base-size random-init encoders at 224 px, 1, 2 or 3 of them, batch 8,
``weighted`` fusion into an 896-wide LLM space on a 14x14 grid) runs in its own subprocess,
because peak RSS never falls. Inside it, after a small warm-up batch, every round times the fused
forward while forward hooks time each encoder inside that same call; the medians give images/s
and the ratio fused time / sum of the encoders' times (target <= 1.1: alignment,
projection and weighting should cost little next to the encoders).

    python -m benchmarks.fusion [--rounds 2] [--families tiny base] [--threads 2] [--projector mlp2x_gelu] [--hidden 896]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

FAMILIES = {
    "tiny": [
        ("resnet10t", "resnet10t"),
        ("convnext_atto", "convnext_atto"),
        ("vit_tiny", "vit_tiny_patch16_224"),
    ],
    "base": [
        ("resnet50", "resnet50"),
        ("convnext_tiny", "convnext_tiny"),
        ("vit_base", "vit_base_patch16_224"),
    ],
}
BATCH, SIZE, GRID = 8, 224, (14, 14)


def measure(family: str, count: int, rounds: int, threads: int, projector: str, hidden: int) -> dict:
    """Runs in the child process: build, warm up, time, report peak RSS.

    Forward hooks time each encoder inside the fused forward, so both numbers of the ratio come
    from the same call under the same machine load, and the models run once per round.
    """
    import torch

    from fusion import EncoderSpec, FusionConfig, VisionFusion

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    specs = [
        EncoderSpec(name=name, timm_name=timm_name, pretrained=False, input_size=SIZE)
        for name, timm_name in FAMILIES[family][:count]
    ]
    config = FusionConfig(encoders=specs, hidden_size=hidden, grid=GRID, mode="weighted", projector=projector)
    model = VisionFusion(config).eval()
    encoder_seconds: list[float] = []
    started: list[float] = []
    for encoder in model.encoders:
        encoder.register_forward_pre_hook(lambda *_: started.append(time.perf_counter()))
        encoder.register_forward_hook(lambda *_: encoder_seconds.append(time.perf_counter() - started.pop()))
    fused_times: list[float] = []
    encoder_sums: list[float] = []
    with torch.inference_mode():
        model([torch.randn(2, 3, SIZE, SIZE) for _ in specs])  # warm-up: kernels, allocator
        pixel_values = [torch.randn(BATCH, 3, SIZE, SIZE) for _ in specs]
        for _ in range(rounds):
            encoder_seconds.clear()
            start = time.perf_counter()
            model(pixel_values)
            fused_times.append(time.perf_counter() - start)
            encoder_sums.append(sum(encoder_seconds))
    fused = statistics.median(fused_times)
    encoders_sum = statistics.median(encoder_sums)
    return {
        "family": family,
        "encoders": "+".join(spec.name for spec in specs),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "images_per_s": BATCH / fused,
        "fused_s": fused,
        "encoders_s": encoders_sum,
        "ratio": statistics.median(f / e for f, e in zip(fused_times, encoder_sums, strict=True)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(family: str, count: int, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.fusion",
        "--child",
        family,
        str(count),
        "--rounds",
        str(args.rounds),
    ]
    command += ["--threads", str(args.threads), "--projector", args.projector, "--hidden", str(args.hidden)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, cwd=Path(__file__).resolve().parents[1]
    )
    if result.returncode != 0:
        raise RuntimeError(f"{family} x{count} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict]) -> None:
    header = f"{'family':<6} {'encoders':<38} {'params M':>8} {'img/s':>7} {'fused s':>8} {'sum enc s':>9} {'ratio':>6} {'peak RSS MB':>11}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['family']:<6} {row['encoders']:<38} {row['params_m']:>8.1f} {row['images_per_s']:>7.1f} "
            f"{row['fused_s']:>8.3f} {row['encoders_s']:>9.3f} {row['ratio']:>6.2f} {row['peak_rss_mb']:>11.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds after one warm-up")
    parser.add_argument("--families", nargs="+", default=["tiny", "base"], choices=sorted(FAMILIES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--projector", default="mlp2x_gelu", choices=["linear", "mlp2x_gelu"])
    parser.add_argument("--hidden", type=int, default=896, help="LLM hidden size (896 = Qwen2.5-0.5B)")
    parser.add_argument("--child", nargs=2, metavar=("FAMILY", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(
                measure(
                    args.child[0], int(args.child[1]), args.rounds, args.threads, args.projector, args.hidden
                )
            )
        )
        return
    rows = []
    started = time.perf_counter()
    for family in args.families:
        for count in (1, 2, 3):
            rows.append(run_child(family, count, args))
            print(f"  done {family} x{count} ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    print(f"batch {BATCH}, {SIZE} px, weighted fusion, {args.projector} projectors to hidden {args.hidden}, ")
    print(f"{GRID[0]}x{GRID[1]} token grid, ", end="")
    print(f"{args.rounds} timed rounds (median), {args.threads} threads, random init\n")
    print_table(rows)
    worst = max(row["ratio"] for row in rows)
    print(f"\nworst fused / sum-of-encoders ratio: {worst:.2f} (target <= 1.1)")


if __name__ == "__main__":
    main()
