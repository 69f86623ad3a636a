"""Generation speed: tokens/s and time to first token, batch 1 vs 8, KV cache on vs off.

Two random-init models built offline: the ``tiny-zh`` preset, and a ``small-zh``-shaped model whose
LLM is Qwen2.5-0.5B-shaped (896 hidden, 24 layers, 151936 vocab) behind the tiny-zh encoders (the
CLIP-L + SAM-B pair would measure the encoders, not generation). Every prompt has one image.
Ratios compare each row's throughput with the same model's batch-1, cache-on row in this process.

tokens/s counts generated tokens over the whole ``generate`` call (prefill included); TTFT is a
``generate`` call for one token. The 0.5B model generates fewer tokens (``--small-new-tokens``)
because without a KV cache each step recomputes the whole batch on CPU.

    python -m benchmarks.generate [--new-tokens 16] [--small-new-tokens 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from ultra.answerer import Request
from ultra.answerer.inputs import collate_requests, encode_request
from ultra.model import build_model

QUESTIONS = ["是否可见病灶？", "病灶是良性还是恶性？", "检查部位是什么？", "结节边界是否清晰？"]


def build(name: str):
    if name == "tiny-zh":
        return build_model("tiny-zh", pretrained=False)
    if name == "small-zh-0.5b":
        from ultra.model import get_preset

        tiny = get_preset("tiny-zh")
        overrides = {
            "encoders": [spec.model_dump() for spec in tiny.encoders],
            "grid": tiny.grid,
            "freeze_encoders": True,
            "tokenizer": "bundled-tiny-zh",
            "llm_hub_name": None,
        }
        return build_model("small-zh", pretrained=False, overrides=overrides)
    raise ValueError(f"unknown benchmark model {name!r}")


def requests(batch: int) -> list[Request]:
    rng = np.random.default_rng(0)
    return [
        Request(QUESTIONS[i % 4], [Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))])
        for i in range(batch)
    ]


def prepare_batch(model, processor, batch_requests: list[Request]) -> dict:
    """The front door's left-padded batch (the model is timed without the Answerer's bookkeeping)."""
    encoded = [encode_request(model, processor, request) for request in batch_requests]
    return collate_requests(model, processor, encoded, padding_side="left")


def timed_generate(model, batch: dict, new_tokens: int, use_cache: bool, pad: int) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        model.generate(
            **batch,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            use_cache=use_cache,
            pad_token_id=pad,
        )
    return time.perf_counter() - start


def measure(
    model, processor, batch_size: int, use_cache: bool, new_tokens: int, repeats: int
) -> tuple[float, float]:
    batch = prepare_batch(model, processor, requests(batch_size))
    timed_generate(model, batch, 2, use_cache, processor.pad_token_id)  # warm-up
    ttft = min(timed_generate(model, batch, 1, use_cache, processor.pad_token_id) for _ in range(repeats))
    total = min(
        timed_generate(model, batch, new_tokens, use_cache, processor.pad_token_id) for _ in range(repeats)
    )
    return batch_size * new_tokens / total, ttft


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--small-new-tokens", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["tiny-zh", "small-zh-0.5b"])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    table = Table(title=f"generation on CPU ({threads} threads), fp32, greedy, one image per prompt")
    for column in (
        "model",
        "params",
        "new tokens",
        "batch",
        "KV cache",
        "tokens/s",
        "TTFT ms",
        "tokens/s ratio",
        "TTFT ratio",
    ):
        table.add_column(column, justify="right" if column not in ("model", "KV cache") else "left")
    for name in args.models:
        model, processor = build(name)
        model.eval()
        params = sum(p.numel() for p in model.parameters())
        baseline = None
        new_tokens = args.new_tokens if name == "tiny-zh" else args.small_new_tokens
        repeats = args.repeats if name == "tiny-zh" else 1
        for batch_size in (1, 8):
            for use_cache in (True, False):
                rate, ttft = measure(model, processor, batch_size, use_cache, new_tokens, repeats)
                baseline = baseline or (rate, ttft)
                table.add_row(
                    name,
                    f"{params / 1e6:.1f}M",
                    str(new_tokens),
                    str(batch_size),
                    "on" if use_cache else "off",
                    f"{rate:.1f}",
                    f"{ttft * 1000:.0f}",
                    f"{rate / baseline[0]:.2f}x",
                    f"{ttft / baseline[1]:.2f}x",
                )
        del model
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
