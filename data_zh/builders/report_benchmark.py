"""The multi-image report benchmark for screening: which images does a report describe, which repeat?

Each item = one Chinese report sentence derived from one BUSI image's label, that image, and
distractors: near-duplicates of it (resized, re-compressed, slightly cropped), images of other
classes, blank / low-texture frames, laparoscopy frames and DICOM frames of other modalities.
Everything is seeded; images are written under the caller's output folder.
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from pydantic import BaseModel, Field

from data_zh.builders.busi import IMPRESSIONS
from data_zh.converters.busi import BUSI_LICENCE, read_busi_labels
from data_zh.converters.dicom import DICOM_LICENCE, convert_dicom
from data_zh.converters.laparoscopy import IMAGE_SUFFIXES, LAPAROSCOPY_LICENCE
from data_zh.io import write_records
from data_zh.schema import Labels, Media, Record, qa_turns
from data_zh.splits import load_split
from fusion.pixels import read_image_file, to_rgb, to_uint8, voi_output_range
from fusion.progress import progress_bar

logger = logging.getLogger(__name__)

ROLES = ("relevant", "duplicate", "other_class", "blank", "laparoscopy", "other_modality")
DUPLICATE_KINDS = ("resized", "recompressed", "cropped")
QUESTION = "报告：{report}\n以上{n}张图像中，哪些与该报告相关？哪些是重复图像？请按编号回答。"


class ReportBenchmarkConfig(BaseModel):
    """How many distractors of each kind go with one report."""

    duplicates: int = Field(2, ge=0)
    other_class: int = Field(1, ge=0)
    blank: int = Field(1, ge=0)
    laparoscopy: int = Field(1, ge=0)
    other_modality: int = Field(1, ge=0)
    max_side: int = Field(256, ge=32, description="distractor frames are shrunk to this longest side")


def near_duplicate(image: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, str, dict]:
    """A near-copy that a screener should flag as redundant; returns (image, file suffix, how)."""
    image = image.convert("RGB")
    width, height = image.size
    if kind == "resized":
        scale = rng.uniform(0.55, 0.85)
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
        return image.resize(size, Image.BILINEAR), "png", {"size": list(size)}
    if kind == "recompressed":
        buffer = io.BytesIO()
        quality = rng.randint(25, 55)
        image.save(buffer, format="JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), "jpg", {"jpeg_quality": quality}
    if kind == "cropped":
        dx, dy = round(width * rng.uniform(0.03, 0.08)), round(height * rng.uniform(0.03, 0.08))
        box = (dx, dy, width - dx, height - dy)
        return image.crop(box), "png", {"crop_box": list(box)}
    raise ValueError(f"unknown near-duplicate kind {kind!r}; known: {DUPLICATE_KINDS}")


def low_texture_frame(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A blank frame: flat grey, a smooth gradient, or faint blurred noise."""
    width, height = size
    kind = rng.choice(("flat", "gradient", "noise"))
    level = rng.randint(0, 60)
    if kind == "flat":
        return Image.new("RGB", size, (level,) * 3)
    if kind == "gradient":
        ramp = np.linspace(level, level + rng.randint(10, 40), width, dtype=np.float32)
        array = np.repeat(np.tile(ramp, (height, 1))[..., None], 3, axis=2)
        return Image.fromarray(array.clip(0, 255).astype(np.uint8))
    noise = np.random.default_rng(rng.getrandbits(32)).normal(level, 4, (height, width))
    grey = Image.fromarray(noise.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(3))
    return grey.convert("RGB")


def dicom_frame_image(path: Path, frame: int) -> Image.Image:
    """One frame of a greyscale DICOM (CT/MR) as 8-bit RGB, shown as a viewer would show it.

    The modality LUT (rescale to Hounsfield or MR units) comes first; then the file's own VOI LUT
    or window (pydicom's, onto the output range PS3.3 C.11.2 gives it); a file without one is
    stretched over its 1st to 99th percentile so that a few outliers do not grey the frame; a
    MONOCHROME1 frame is inverted, so bright means dense in every distractor."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    dataset = pydicom.dcmread(path)
    pixels = dataset.pixel_array
    if int(dataset.get("NumberOfFrames") or 1) > 1:
        pixels = pixels[frame]
    values = apply_modality_lut(pixels, dataset)
    window = voi_output_range(dataset)
    if window is None:
        low, high = (float(v) for v in np.percentile(values, (1, 99)))
    else:
        values, (low, high) = apply_voi_lut(values, dataset), window
    grey = to_uint8(np.asarray(values), low, high)
    if dataset.PhotometricInterpretation == "MONOCHROME1":
        grey = 255 - grey
    return to_rgb(grey, str(path))


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    image = image.convert("RGB")
    scale = max_side / max(image.size)
    if scale < 1:
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR
        )
    return image


def _laparoscopy_frames(root: Path, split: str) -> list[Path]:
    splits = load_split("laparoscopy")
    if split in splits:
        return [root / rel for rel in splits[split]]
    return sorted(
        p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.parent.name == "images"
    )


def dicom_split_for(split: str) -> str:
    """The committed DICOM split whose files may sit beside BUSI images of ``split``: the same name,
    and for a BUSI pool that the DICOM splits lack (``selftrain_pool``, training-side data) ``train``."""
    return split if split in load_split("dicom") else "train"


def _other_modality_frames(root: Path, split: str) -> list[tuple[Path, int]]:
    """CT/MR frames of the committed DICOM split that matches ``split``, never another split's."""
    wanted = dicom_split_for(split)
    return [
        (root / rec.media.dicom[0].path, frame)
        for rec in convert_dicom(root)
        if rec.modality != "US" and rec.split == wanted
        for frame in range(rec.extra["dicom"]["NumberOfFrames"])
    ]


def report_licence(roles: list[str]) -> str:
    """The licences of what one report actually contains: BUSI always, then each distractor
    source present (a report with laparoscopy frames is non-commercial; one without is not)."""
    parts = [BUSI_LICENCE]
    if "other_modality" in roles:
        parts.append(f"DICOM frames: {DICOM_LICENCE}")
    if "laparoscopy" in roles:
        parts.append(f"laparoscopy frames: {LAPAROSCOPY_LICENCE}")
    return "; ".join(parts)


ImageMaker = Callable[[], tuple]
"""Draws one image when called: ``(image, file suffix)`` or ``(image, file suffix, how)``."""


@dataclass(frozen=True)
class _DistractorPools:
    """Where one split's distractors come from: its labelled BUSI pool and the other sources' frames."""

    busi_root: Path
    rows: dict[str, dict]
    pool: list[str]
    laparoscopy: list[Path]
    dicom: list[tuple[Path, int]]


def _report_items(
    path: str,
    number: int,
    true_image: Image.Image,
    pools: _DistractorPools,
    config: ReportBenchmarkConfig,
    rng: random.Random,
) -> list[tuple[str, ImageMaker, dict]]:
    """The shuffled (role, image maker, detail) items of one report; images are drawn later, in
    this order, so the seeded generator is consumed the same way every run."""
    busi_root, rows = pools.busi_root, pools.rows
    label = rows[path]["label"]
    items: list[tuple[str, ImageMaker, dict]] = [
        ("relevant", lambda img=true_image: (img, "png"), {"source_image": path})
    ]
    for index in range(config.duplicates):
        kind = DUPLICATE_KINDS[(index + number) % len(DUPLICATE_KINDS)]
        items.append(
            (
                "duplicate",
                lambda k=kind, img=true_image: near_duplicate(img, k, rng),
                {"duplicate_kind": kind},
            )
        )
    others = [p for p in pools.pool if rows[p]["label"] != label]
    for other in rng.sample(others, min(config.other_class, len(others))):
        items.append(
            (
                "other_class",
                lambda p=other: (read_image_file(busi_root / p), "png"),
                {"source_image": other, "label": rows[other]["label"]},
            )
        )
    for _ in range(config.blank):
        items.append(("blank", lambda size=true_image.size: (low_texture_frame(size, rng), "png"), {}))
    for frame in rng.sample(pools.laparoscopy, min(config.laparoscopy, len(pools.laparoscopy))):
        items.append(
            (
                "laparoscopy",
                lambda f=frame: (_shrink(read_image_file(f), config.max_side), "jpg"),
                {"source_image": frame.name},
            )
        )
    for dcm, frame in rng.sample(pools.dicom, min(config.other_modality, len(pools.dicom))):
        items.append(
            (
                "other_modality",
                lambda d=dcm, f=frame: (_shrink(dicom_frame_image(d, f), config.max_side), "png"),
                {"source_image": f"{dcm.name}#{frame}"},
            )
        )
    rng.shuffle(items)
    return items


def _write_items(
    items: list[tuple[str, ImageMaker, dict]], out_dir: Path, report_id: str
) -> tuple[list[str], list[str], list[dict]]:
    """Draw and save each item's image under ``images/<report_id>/``; returns the relative paths,
    roles and details (with how each near-duplicate was made) in item order."""
    (out_dir / "images" / report_id).mkdir(exist_ok=True)
    images, roles, details = [], [], []
    for index, (role, make, detail) in enumerate(items):
        image, suffix, *how = make()
        detail = {**detail, **(how[0] if how else {})}
        rel = f"images/{report_id}/{index:02d}.{suffix}"
        image.save(out_dir / rel, **({"quality": 95} if suffix == "jpg" else {}))
        images.append(rel)
        roles.append(role)
        details.append(detail)
    return images, roles, details


def _screening_answer(relevant: int, duplicates: list[int]) -> str:
    """The reference answer: the relevant image and its duplicates, numbered from 1."""
    return f"相关图像：第{relevant + 1}张。重复图像：" + (
        "、".join(f"第{i + 1}张" for i in duplicates) + f"（与第{relevant + 1}张重复）。"
        if duplicates
        else "无。"
    )


def _report_record(
    report_id: str,
    split: str,
    out_dir: Path,
    path: str,
    label: str,
    report: str,
    images: list[str],
    roles: list[str],
    details: list[dict],
    seed: int,
) -> Record:
    """One report's record; ``labels.image_roles`` and ``extra`` hold the ground truth."""
    relevant = roles.index("relevant")
    duplicates = [i for i, role in enumerate(roles) if role == "duplicate"]
    return Record(
        id=report_id,
        source="busi_report_benchmark",
        licence=report_licence(roles),
        specialty="breast",
        modality="US",
        language="zh",
        task="report_screening",
        media=Media(root=str(out_dir.resolve()), images=images),
        conversations=qa_turns(
            QUESTION.format(report=report, n=len(images)),
            _screening_answer(relevant, duplicates),
            n_images=len(images),
        ),
        answer_type="open",
        labels=Labels(classes=[label], image_roles=roles),
        split=split,
        extra={
            "report": report,
            "source_image": path,
            "relevant": [relevant],
            "duplicates": duplicates,
            "duplicate_of": {str(i): relevant for i in duplicates},
            "image_details": details,
            "seed": seed,
        },
    )


def build_report_benchmark(
    busi_root: str | Path,
    out_dir: str | Path,
    *,
    split: str = "val",
    laparoscopy_root: str | Path | None = None,
    dicom_root: str | Path | None = None,
    n_reports: int | None = None,
    seed: int = 0,
    config: ReportBenchmarkConfig | None = None,
) -> list[Record]:
    """One ``report_screening`` record per BUSI image of ``split`` (or ``n_reports`` of them).

    Only images of ``split`` are used (the true image, the other-class distractors, laparoscopy
    frames and CT/MR frames, each from its own committed split of the same name), so the
    evaluation benchmark built from ``val`` never sees training images and the reports a student
    trains on (``train``) never see validation ones. Laparoscopy and DICOM
    distractors are skipped when their roots are not given. The records are also written to
    ``out_dir/benchmark.jsonl``; ``labels.image_roles`` and ``extra`` hold the ground truth.
    """
    config = config or ReportBenchmarkConfig()
    busi_root, out_dir = Path(busi_root), Path(out_dir)
    rng = random.Random(seed)
    rows = read_busi_labels(busi_root)
    splits = load_split("busi")
    if split not in splits:
        raise ValueError(f"unknown busi split {split!r}; known: {sorted(splits)}")
    pool = [path for path in splits[split] if path in rows]
    chosen = pool if n_reports is None else rng.sample(pool, min(n_reports, len(pool)))
    pools = _DistractorPools(
        busi_root=busi_root,
        rows=rows,
        pool=pool,
        laparoscopy=_laparoscopy_frames(Path(laparoscopy_root), split) if laparoscopy_root else [],
        dicom=_other_modality_frames(Path(dicom_root), split) if dicom_root else [],
    )
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    records = []
    bar = progress_bar(chosen, description="report benchmark", total=len(chosen), leave=False)
    for number, path in enumerate(bar):
        label = rows[path]["label"]
        true_image = read_image_file(busi_root / path)
        items = _report_items(path, number, true_image, pools, config, rng)
        report_id = f"report-{split}-{number:04d}"
        images, roles, details = _write_items(items, out_dir, report_id)
        report = rng.choice(IMPRESSIONS[label])
        records.append(
            _report_record(report_id, split, out_dir, path, label, report, images, roles, details, seed)
        )
    write_records(records, out_dir / "benchmark.jsonl")
    logger.info(
        "report benchmark: %d reports, %d images in %s",
        len(records),
        sum(r.media.count for r in records),
        out_dir,
    )
    return records
