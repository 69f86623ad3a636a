"""How the committed splits were made: seeded, by image, stratified, with temporal gaps for video.

Consumers never call these; they read ``data_zh/splits/*.json`` through ``load_split``. The
functions stay here so the files can be regenerated and checked (the tests do both).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BUSI_RATIOS = {"train": 0.55, "selftrain_pool": 0.20, "val": 0.25}
LAPAROSCOPY_RATIOS = {"train": 0.7, "val": 0.3}
DICOM_RATIOS = {"train": 0.7, "val": 0.3}
BUSBRA_FOLDS = {1: "train", 2: "train", 3: "train", 4: "val"}  # official fold 5 is held out of shared/data


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
    labels: Mapping[str, str],
    ratios: Mapping[str, float],
    seed: int,
    groups: Mapping[str, str] | None = None,
    fixed: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Split keys (image paths) by label so each split keeps the label mix; sorted output.

    Keys sharing a group (near-duplicate images, one DICOM study) always land in the same split.
    Groups are placed largest first into the split furthest below its target, then single keys
    fill the remaining places, so the counts match the ratios exactly whenever groups allow.

    ``fixed`` pins keys to a split (a committed split being extended with new images): a unit
    holding a pinned key goes to that split and counts towards it, the other units fill the
    targets of all keys as above. Without pins the result is the unpinned rule's, unit for unit.
    """
    groups = groups or {}
    fixed = fixed or {}
    members: dict[str, list[str]] = defaultdict(list)
    for key in labels:
        members[groups.get(key, f"key:{key}")].append(key)
    by_label: dict[str, list[list[str]]] = defaultdict(list)
    for keys in members.values():
        majority = Counter(labels[key] for key in keys).most_common(1)[0][0]
        by_label[majority].append(sorted(keys))
    splits: dict[str, list[str]] = {name: [] for name in ratios}
    for label in sorted(by_label):
        units = sorted(by_label[label])
        target = _allocate(sum(map(len, units)), ratios)
        placed = dict.fromkeys(ratios, 0)
        for unit in (unit for unit in units if any(key in fixed for key in unit)):
            name = _pinned_split(unit, fixed, ratios)
            splits[name].extend(unit)
            placed[name] += len(unit)
        units = [unit for unit in units if not any(key in fixed for key in unit)]
        random.Random(f"{seed}:{label}").shuffle(units)
        units.sort(key=len, reverse=True)  # stable: shuffled order kept within each size
        for unit in units:
            name = max(ratios, key=lambda n: (target[n] - placed[n], ratios[n]))
            splits[name].extend(unit)
            placed[name] += len(unit)
    return {name: sorted(keys) for name, keys in splits.items()}


def _pinned_split(unit: Sequence[str], fixed: Mapping[str, str], ratios: Mapping[str, float]) -> str:
    """The one split the pinned keys of a unit name; a unit pinned to two splits cannot be kept whole."""
    names = sorted({fixed[key] for key in unit if key in fixed})
    if len(names) > 1:
        pins = ", ".join(f"{key!r} in {fixed[key]!r}" for key in unit if key in fixed)
        raise ValueError(f"a group is pinned to several splits and cannot stay whole: {pins}")
    if names[0] not in ratios:
        raise ValueError(f"{unit[0]!r} is pinned to {names[0]!r}, not one of {sorted(ratios)}")
    return names[0]


def near_duplicate_groups(images: Mapping[str, Path], max_distance: int = 8) -> dict[str, str]:
    """Key -> group id for images whose perceptual hashes (pHash) are within ``max_distance`` bits,
    joined transitively; keys without a near-duplicate are left out."""
    hashes = {key: _phash(path) for key, path in sorted(images.items())}
    parent = {key: key for key in hashes}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    keys = list(hashes)
    for i, first in enumerate(keys):
        for second in keys[i + 1 :]:
            if hashes[first] - hashes[second] <= max_distance:
                parent[root(second)] = root(first)
    grouped: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        grouped[root(key)].append(key)
    return {key: f"group:{min(keys_)}" for keys_ in grouped.values() if len(keys_) > 1 for key in keys_}


def _phash(path: Path) -> Any:
    """The pHash of the file's own pixels (not the RGB policy's: the committed groups were hashed
    so), with the file closed again at once."""
    import imagehash
    from PIL import Image

    with Image.open(path) as image:
        return imagehash.phash(image)


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


def busi_split_payload(
    labels: Mapping[str, str],
    groups: Mapping[str, str],
    seed: int = 20240601,
    max_distance: int = 8,
    previous: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The BUSI split: by image, stratified by benign/malignant/normal, 55/20/25, near-duplicate
    images (BUSI holds several near-identical frames of one scan) kept in one split.

    ``previous`` is an earlier committed split (split -> keys) being extended with new images: its
    keys keep their split, a new near-duplicate of one of them joins it, and the other new images
    fill the 55/20/25 targets of the whole folder by the same seeded rule. It is kept in the file
    as ``first_release`` so results can still be given on the earlier val images alone.
    """
    grouped: dict[str, list[str]] = defaultdict(list)
    for key, group in groups.items():
        grouped[group].append(key)
    fixed = {key: name for name, keys in (previous or {}).items() for key in keys}
    missing = sorted(set(fixed) - set(labels))
    if missing:
        raise ValueError(
            f"{len(missing)} image(s) of the previous split are not in labels.csv, e.g. {missing[0]!r}"
        )
    payload: dict[str, Any] = {
        "name": "busi",
        "unit": "image path relative to the BUSI root",
        "seed": seed,
        "ratios": BUSI_RATIOS,
        "stratified_by": "label",
        "grouped_by": f"near-duplicate images (pHash distance <= {max_distance} bits, transitive)",
        "groups": sorted(sorted(keys) for keys in grouped.values()),
        "splits": stratified_split(labels, BUSI_RATIOS, seed, groups, fixed),
    }
    if previous:
        payload["first_release"] = {name: sorted(keys) for name, keys in previous.items()}
    return payload


def make_busi_split_payload(
    root: str | Path,
    seed: int = 20240601,
    max_distance: int = 8,
    previous: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """``busi_split_payload`` computed from a BUSI-layout folder (labels.csv + images/); pass the
    committed file's ``first_release`` (or its splits) as ``previous`` to extend it."""
    from data_zh.converters.busi import read_busi_labels

    rows = read_busi_labels(root)
    groups = near_duplicate_groups({key: Path(root) / key for key in rows}, max_distance)
    labels = {key: row["label"] for key, row in rows.items()}
    return busi_split_payload(labels, groups, seed, max_distance, previous)


def busbra_split_payload(folds: Mapping[str, int], patients: Mapping[str, str]) -> dict[str, Any]:
    """The BUS-BRA split: the official folds kept, fold 4 = ``val``, folds 1–3 = ``train`` and its
    cross-validation folds (``cv_folds``). The official folds are patient-disjoint; this checks it,
    so both views (``-l``/``-r``) of one lesion, one patient's, can never straddle two splits."""
    fold_of_patient: dict[str, int] = {}
    for key in sorted(folds):
        patient, fold = patients[key], folds[key]
        if fold_of_patient.setdefault(patient, fold) != fold:
            raise ValueError(f"patient {patient} lies in folds {fold_of_patient[patient]} and {fold} ({key})")
    unknown = sorted(set(folds.values()) - set(BUSBRA_FOLDS))
    if unknown:
        raise ValueError(f"BUS-BRA fold(s) {unknown} are not one of {sorted(BUSBRA_FOLDS)}")
    by_fold = {fold: sorted(key for key in folds if folds[key] == fold) for fold in sorted(BUSBRA_FOLDS)}
    splits = sorted(set(BUSBRA_FOLDS.values()), key=list(BUSBRA_FOLDS.values()).index)
    return {
        "name": "busbra",
        "unit": "image ID (bus_data.csv ID, Images/<ID>.png)",
        "rule": "official 5-fold-cv.csv kFold: 4 = val, 1-3 = train (the folds kept for cross-validation)",
        "grouped_by": "patient (Case); the official folds are patient-disjoint",
        "cv_folds": {str(fold): keys for fold, keys in by_fold.items() if BUSBRA_FOLDS[fold] == "train"},
        "splits": {name: sorted(key for key in folds if BUSBRA_FOLDS[folds[key]] == name) for name in splits},
    }


def make_busbra_split_payload(root: str | Path) -> dict[str, Any]:
    """``busbra_split_payload`` from a BUS-BRA folder (bus_data.csv, 5-fold-cv.csv)."""
    from data_zh.converters.busbra import read_busbra_rows

    rows = read_busbra_rows(root)
    folds = {key: row["fold"] for key, row in rows.items()}
    return busbra_split_payload(folds, {key: row["patient"] for key, row in rows.items()})


def official_folds(split_name: str = "busbra") -> list[list[str]]:
    """The committed cross-validation folds of a split that keeps its dataset's own folds, in order."""
    from data_zh.splits import load_split_payload

    folds = load_split_payload(split_name).get("cv_folds")
    if not folds:
        raise ValueError(f"the {split_name} split keeps no official folds")
    return [folds[name] for name in sorted(folds, key=int)]


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


def dicom_split_payload(
    modalities: Mapping[str, str], studies: Mapping[str, str], seed: int = 20240601
) -> dict[str, Any]:
    """The DICOM split: listed by file, stratified by modality, files of one study kept together
    (the shared files include the same image in several transfer syntaxes)."""
    return {
        "name": "dicom",
        "unit": "file path relative to the DICOM root",
        "seed": seed,
        "ratios": DICOM_RATIOS,
        "stratified_by": "modality",
        "grouped_by": "StudyInstanceUID",
        "splits": stratified_split(modalities, DICOM_RATIOS, seed, studies),
    }


def folder_label(key: str) -> str:
    """The class of an image key in BUSI's layout (``images/<label>/<file>``): its folder's name."""
    return Path(key).parent.name


def cv_folds(
    k: int,
    seed: int,
    labels: Mapping[str, str] | None = None,
    split_name: str = "busi",
    split: str = "train",
) -> list[list[str]]:
    """``k`` cross-validation folds of one committed split, stratified by label, near-duplicate
    groups kept whole (the split file's ``groups``), so a recipe can be chosen without touching val.

    ``labels`` maps keys to classes; without it a key's label is its folder name (BUSI's layout,
    ``images/<label>/...``). Every key of the split lands in exactly one fold; sorted output.
    """
    from data_zh.splits import load_split_payload

    if k < 2:
        raise ValueError(f"cross-validation needs k >= 2 folds, got {k}")
    payload = load_split_payload(split_name)
    if split not in payload["splits"]:
        raise ValueError(f"unknown {split_name} split {split!r}; known: {sorted(payload['splits'])}")
    keys = payload["splits"][split]
    if len(keys) < k:
        raise ValueError(f"{split_name} {split}: {len(keys)} keys cannot make {k} folds")
    wanted = set(keys)
    groups = {
        key: f"group:{index}"
        for index, members in enumerate(payload.get("groups", []))
        for key in members
        if key in wanted
    }
    label_of = {key: (labels[key] if labels is not None else folder_label(key)) for key in keys}
    names = [f"fold{index}" for index in range(k)]
    folds = stratified_split(label_of, dict.fromkeys(names, 1 / k), seed, groups)
    return [folds[name] for name in names]


def check_disjoint(splits: Mapping[str, Sequence[str]]) -> None:
    """Raise if any key sits in two splits."""
    seen: dict[str, str] = {}
    for name, keys in splits.items():
        for key in keys:
            if key in seen:
                raise ValueError(f"{key!r} is in both {seen[key]!r} and {name!r}")
            seen[key] = name
