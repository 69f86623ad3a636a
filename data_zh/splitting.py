"""How the committed splits were made: seeded, by image, stratified, with temporal gaps for video.

Consumers never call these; they read ``data_zh/splits/*.json`` through ``load_split``. The
functions stay here so the files can be regenerated and checked (the tests do both).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SPLITS_DIR = Path(__file__).resolve().parent / "splits"
BUSI_RATIOS = {"train": 0.55, "selftrain_pool": 0.20, "val": 0.25}
LAPAROSCOPY_RATIOS = {"train": 0.7, "val": 0.3}
DICOM_RATIOS = {"train": 0.7, "val": 0.3}


def _allocate(n: int, ratios: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder rounding so the counts add up to n; every split gets one if n allows."""
    raw = {name: n * share for name, share in ratios.items()}
    counts = {name: int(value) for name, value in raw.items()}
    order = sorted(ratios, key=lambda name: raw[name] - counts[name], reverse=True)
    for name in order[: n - sum(counts.values())]:
        counts[name] += 1
    for name in ratios:
        if counts[name] == 0 and n >= len(ratios):
            donor = max(counts, key=counts.get)
            counts[donor] -= 1
            counts[name] += 1
    return counts


def stratified_split(
    labels: Mapping[str, str], ratios: Mapping[str, float], seed: int
) -> dict[str, list[str]]:
    """Split keys (image paths) by label so each split keeps the label mix; sorted output."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for key, label in labels.items():
        by_label[label].append(key)
    splits: dict[str, list[str]] = {name: [] for name in ratios}
    for label in sorted(by_label):
        keys = sorted(by_label[label])
        random.Random(f"{seed}:{label}").shuffle(keys)
        start = 0
        for name, count in _allocate(len(keys), ratios).items():
            splits[name].extend(keys[start : start + count])
            start += count
    return {name: sorted(keys) for name, keys in splits.items()}


def temporal_block_split(
    frames: Mapping[str, int], ratios: Mapping[str, float], block_size: int, gap: int, seed: int
) -> tuple[dict[str, list[str]], list[str]]:
    """Assign whole blocks of consecutive frame indices to splits; drop frames near a foreign block.

    A frame is dropped when a frame of another split lies within ``gap`` indices of it, so
    neighbouring (near-identical) frames never straddle two splits. Returns (splits, dropped).
    """
    blocks: dict[int, list[str]] = defaultdict(list)
    for key, index in frames.items():
        blocks[index // block_size].append(key)
    block_ids = sorted(blocks)
    random.Random(seed).shuffle(block_ids)
    owner: dict[int, str] = {}
    start = 0
    for name, count in _allocate(len(block_ids), ratios).items():
        for block in block_ids[start : start + count]:
            owner[block] = name
        start += count
    split_of = {key: owner[index // block_size] for key, index in frames.items()}
    dropped = sorted(
        key
        for key, index in frames.items()
        if any(
            split_of[other] != split_of[key] and abs(other_index - index) <= gap
            for other, other_index in frames.items()
        )
    )
    splits: dict[str, list[str]] = {name: [] for name in ratios}
    for key in sorted(frames, key=frames.get):
        if key not in dropped:
            splits[split_of[key]].append(key)
    return splits, dropped


def busi_split_payload(labels: Mapping[str, str], seed: int = 20240601) -> dict[str, Any]:
    """The BUSI split: by image, stratified by benign/malignant/normal, 55/20/25."""
    return {
        "name": "busi",
        "unit": "image path relative to the BUSI root",
        "seed": seed,
        "ratios": BUSI_RATIOS,
        "stratified_by": "label",
        "splits": stratified_split(labels, BUSI_RATIOS, seed),
    }


def laparoscopy_split_payload(
    frames: Mapping[str, int], block_size: int = 10, gap: int = 2, seed: int = 20240601
) -> dict[str, Any]:
    """The laparoscopy split: temporal blocks of frame indices, a gap of dropped frames between."""
    splits, dropped = temporal_block_split(frames, LAPAROSCOPY_RATIOS, block_size, gap, seed)
    return {
        "name": "laparoscopy",
        "unit": "frame path relative to the dataset root",
        "seed": seed,
        "ratios": LAPAROSCOPY_RATIOS,
        "block_size": block_size,
        "gap": gap,
        "frame_index": {key: frames[key] for key in sorted(frames, key=frames.get)},
        "dropped": dropped,
        "splits": splits,
    }


def dicom_split_payload(modalities: Mapping[str, str], seed: int = 20240601) -> dict[str, Any]:
    """The DICOM split: by file, stratified by modality."""
    return {
        "name": "dicom",
        "unit": "file path relative to the DICOM root",
        "seed": seed,
        "ratios": DICOM_RATIOS,
        "stratified_by": "modality",
        "splits": stratified_split(modalities, DICOM_RATIOS, seed),
    }


def write_split(payload: dict[str, Any], directory: str | Path = SPLITS_DIR) -> Path:
    """Write a split payload as ``<name>.json``."""
    path = Path(directory) / f"{payload['name']}.json"
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def check_disjoint(splits: Mapping[str, Sequence[str]]) -> None:
    """Raise if any key sits in two splits."""
    seen: dict[str, str] = {}
    for name, keys in splits.items():
        for key in keys:
            if key in seen:
                raise ValueError(f"{key!r} is in both {seen[key]!r} and {name!r}")
            seen[key] = name
