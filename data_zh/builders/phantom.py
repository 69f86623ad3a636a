"""Synthetic breast-ultrasound phantoms: labelled images to pre-train encoders without downloads.

Encoders trained from scratch on a hundred BUSI images learn little beyond them, and pretrained
weights cannot be fetched everywhere ultra runs. A phantom carries what a B-mode breast scan is
made of — tissue layers, Cooper's ligaments, fat lobules that mimic lesions, speckle from a
band-limited point-spread function, depth attenuation and log compression — and, when asked, one
finding whose label is known by construction: a circumscribed, wider-than-tall oval with posterior
enhancement, or an irregular, angular or spiculated mass with posterior shadowing (the BI-RADS
shape, orientation and posterior features that separate benign from malignant). An encoder that
has learnt to find and describe such masses starts BUSI from features that matter there;
``docs/tiny-zh-next-recipe.md`` measures whether it helps. About 0.07 s per 256-px image.
The images are rendered with numpy; another numpy version or CPU may change a few pixels, so a
rendered set is reused within its folder, not promised bit-equal between machines.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from data_zh.schema import Labels, Media, Record

FINDINGS = ("none", "oval", "irregular")
PHANTOM_LICENCE = "Apache-2.0 (rendered by ultra's data_zh.builders.phantom)"
# Bump when the renderer changes: a folder rendered by another version is rendered again.
RENDERER_VERSION = 1


@dataclass(frozen=True)
class PhantomImage:
    """A rendered phantom (``uint8``, height × width) and the finding drawn into it."""

    pixels: np.ndarray
    finding: str


def render_phantom(finding: str, rng: np.random.Generator, size: int = 256) -> PhantomImage:
    """One grayscale B-mode-like image of ``size`` × ``size`` pixels holding ``finding``."""
    if finding not in FINDINGS:
        raise ValueError(f"unknown phantom finding {finding!r}; known: {', '.join(FINDINGS)}")
    if size < 32:
        raise ValueError(f"phantom size {size} is too small to hold tissue layers (at least 32)")
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64) / size
    echo = _tissue_layers(rows, cols, rng, size)
    for _ in range(int(rng.integers(0, 6))):
        echo = _add_fat_lobule(echo, rows, cols, rng)
    if finding != "none":
        echo = _add_mass(echo, rows, cols, rng, irregular=finding == "irregular")
    amplitude = np.sqrt(np.clip(echo, 1e-4, None)) * _speckle(rng, size)
    attenuation = np.exp(-rng.uniform(1.0, 2.5) * rows)
    return PhantomImage(_log_compress(amplitude * attenuation, rng), finding)


def write_phantom_set(
    directory: str | Path, count: int, size: int = 256, seed: int = 0
) -> list[tuple[str, str]]:
    """Render ``count`` phantoms (the findings in turn, image ``i`` from seed ``(seed, i)``) as
    ``images/<finding>/<i>.png`` under ``directory`` with a ``labels.csv``; return
    ``(relative path, finding)`` rows. A folder holding the same complete set is reused: its
    manifest is written last and removed before any image is rewritten."""
    if count < 1:
        raise ValueError(f"a phantom set needs at least one image, not {count}")
    root = Path(directory)
    manifest = {"count": count, "size": size, "seed": seed, "renderer": RENDERER_VERSION}
    manifest_path, labels_path = root / "phantoms.json", root / "labels.csv"
    reused = _complete_set(root, manifest)
    if reused is not None:
        return reused
    manifest_path.unlink(missing_ok=True)
    rows = []
    for index in range(count):
        finding = FINDINGS[index % len(FINDINGS)]
        image = render_phantom(finding, np.random.default_rng([seed, index]), size)
        relative = f"images/{finding}/{index:05d}.png"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.pixels).save(root / relative)
        rows.append((relative, finding))
    with labels_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "finding"])
        writer.writerows(rows)
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    return rows


def _complete_set(root: Path, manifest: dict) -> list[tuple[str, str]] | None:
    """The rows of a set rendered with ``manifest`` whose images are all there, else None."""
    manifest_path, labels_path = root / "phantoms.json", root / "labels.csv"
    if not (manifest_path.exists() and labels_path.exists()):
        return None
    if json.loads(manifest_path.read_text(encoding="utf-8")) != manifest:
        return None
    with labels_path.open(encoding="utf-8", newline="") as handle:
        rows = [(row["image"], row["finding"]) for row in csv.DictReader(handle)]
    complete = len(rows) == manifest["count"] and all((root / path).is_file() for path, _ in rows)
    return rows if complete else None


def build_phantom_records(root: str | Path, count: int, size: int = 256, seed: int = 0) -> list[Record]:
    """One labelled single-image record per phantom of the set in ``root`` (rendered on first use):
    what a classification stage pre-trains the encoders on."""
    root = Path(root)
    media_root = str(root.resolve())
    return [
        Record(
            id=f"phantom-{Path(path).stem}",
            source="phantom",
            licence=PHANTOM_LICENCE,
            specialty="breast",
            modality="US",
            language="zh",
            task="lesion_classification",
            media=Media(root=media_root, images=[path]),
            labels=Labels(classes=[finding]),
        )
        for path, finding in write_phantom_set(root, count, size, seed)
    ]


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Zero-mean, unit-variance noise with features about ``scale`` (fraction of the image) wide."""
    spectrum = np.fft.fft2(rng.standard_normal((size, size)))
    freq = np.fft.fftfreq(size)
    fy, fx = np.meshgrid(freq, freq, indexing="ij")
    field = np.real(np.fft.ifft2(spectrum * np.exp(-((fx**2 + fy**2) * (scale * size) ** 2))))
    return (field - field.mean()) / (field.std() + 1e-12)


def _smooth_curve(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """A smooth random 1-D profile (unit variance), features about ``scale`` of the width."""
    return _smooth_noise(rng, size, scale)[0]


def _tissue_layers(rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Skin line, subcutaneous fat, fibroglandular tissue and pectoral muscle, crossed by the
    thin bright wavy lines (Cooper's ligaments, fascia) that give breast scans their layers."""
    wave = 0.03 * _smooth_curve(rng, size, 0.25)
    skin = rng.uniform(0.02, 0.05)
    fat_end = rng.uniform(0.12, 0.35) + wave
    gland_end = np.clip(fat_end + rng.uniform(0.3, 0.5) + 1.5 * wave[::-1], 0, 0.95)
    echo = np.full(rows.shape, rng.uniform(0.08, 0.2))
    gland = (rows >= fat_end) & (rows < gland_end)
    texture = 0.2 * _smooth_noise(rng, size, 0.04)
    echo = np.where(gland, rng.uniform(0.6, 1.0) + texture, echo)
    echo = np.where(rows >= gland_end, rng.uniform(0.25, 0.45), echo)
    for _ in range(int(rng.integers(6, 16))):
        depth = rng.uniform(skin, 1.0)
        curve = depth + rng.uniform(0.01, 0.04) * _smooth_curve(rng, size, rng.uniform(0.15, 0.4))
        width = rng.uniform(0.003, 0.008)
        echo = echo + rng.uniform(0.4, 1.2) * np.exp(-(((rows - curve) / width) ** 2))
    echo[rows < skin] = rng.uniform(1.0, 1.5)
    return np.clip(echo, 0.02, None)


def _blob_mask(
    rows: np.ndarray,
    cols: np.ndarray,
    centre: tuple[float, float],
    radius: float,
    aspect: float,
    angle: float,
    roughness: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Soft mask of a closed shape whose radius varies with angle (0: ellipse)."""
    dy, dx = rows - centre[0], cols - centre[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = (dx * cos + dy * sin) / aspect, (-dx * sin + dy * cos)
    theta, distance = np.arctan2(v, u), np.hypot(u, v)
    boundary = np.ones_like(theta)
    for harmonic in range(2, 12):
        amplitude = roughness * rng.uniform(0, 1) / harmonic**0.7
        boundary = boundary + amplitude * np.cos(harmonic * theta + rng.uniform(0, 2 * np.pi))
    if roughness > 0:  # spicules: narrow spikes
        for _ in range(int(rng.integers(0, 8))):
            boundary = boundary + rng.uniform(0.2, 0.6) * np.exp(
                -((np.angle(np.exp(1j * (theta - rng.uniform(-np.pi, np.pi)))) / 0.08) ** 2)
            )
    edge = 0.004 if roughness == 0 else 0.01
    return 1 / (1 + np.exp((distance - radius * boundary) / edge))


def _add_fat_lobule(
    echo: np.ndarray, rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A mildly hypoechoic oval in the fat layer: the normal structure that mimics a lesion."""
    centre = (rng.uniform(0.08, 0.6), rng.uniform(0.05, 0.95))
    radius, aspect = rng.uniform(0.03, 0.1), rng.uniform(1.5, 3.5)
    mask = _blob_mask(rows, cols, centre, radius, aspect, rng.uniform(-0.2, 0.2), 0.0, rng)
    return echo * (1 - mask * rng.uniform(0.3, 0.7))


def _add_mass(
    echo: np.ndarray, rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator, irregular: bool
) -> np.ndarray:
    """A hypoechoic mass and its posterior feature (enhancement if oval, shadowing if irregular)."""
    radius = rng.uniform(0.07, 0.22)
    centre = (rng.uniform(0.3, 0.65), rng.uniform(0.25, 0.75))
    if irregular:
        aspect, angle = rng.uniform(0.6, 1.2), rng.uniform(-0.6, 0.6) + np.pi / 2 * (rng.random() < 0.4)
        mask = _blob_mask(rows, cols, centre, radius, aspect, angle, rng.uniform(0.15, 0.4), rng)
        inside = rng.uniform(0.01, 0.1) * (1 + 0.5 * _smooth_noise(rng, rows.shape[0], 0.03))
        posterior = rng.uniform(0.15, 0.6)
        halo = rng.random() < 0.5
    else:
        aspect, angle = rng.uniform(1.3, 2.5), rng.uniform(-0.25, 0.25)
        mask = _blob_mask(rows, cols, centre, radius, aspect, angle, 0.0, rng)
        anechoic = rng.random() < 0.4  # a cyst: no internal echoes
        inside = np.full(rows.shape, 0.003 if anechoic else rng.uniform(0.02, 0.12))
        posterior = rng.uniform(1.2, 1.7)
        halo = False
    columns = np.convolve(mask.max(axis=0), np.hanning(9) / np.hanning(9).sum(), mode="same")[None, :]
    onset = np.clip((rows - centre[0]) / max(radius, 1e-3), 0, 1)  # grows from the mass's middle down
    echo = echo * (1 + (posterior - 1) * columns * onset)
    if halo:  # echogenic rim around an infiltrating margin
        ring = mask * (1 - mask) * 4
        echo = echo + 0.6 * ring
    return echo * (1 - mask) + np.clip(inside, 0.005, None) * mask


def _speckle(rng: np.random.Generator, size: int) -> np.ndarray:
    """Speckle: envelopes of complex noise through an anisotropic PSF, averaged over a few looks
    as spatial compounding does on current scanners."""
    freq = np.fft.fftfreq(size)
    fy, fx = np.meshgrid(freq, freq, indexing="ij")
    axial, lateral = rng.uniform(0.4, 0.8), rng.uniform(0.8, 1.6)  # PSF sigmas in pixels
    response = np.exp(-2 * np.pi**2 * ((fy * axial) ** 2 + (fx * lateral) ** 2))
    looks = int(rng.integers(1, 4))
    envelope = sum(
        np.abs(
            np.fft.ifft2(
                np.fft.fft2(rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size)))
                * response
            )
        )
        for _ in range(looks)
    )
    return envelope / envelope.mean()


def _log_compress(amplitude: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scanner display: log compression over a dynamic range, gain, 8-bit output."""
    decibels = 20 * np.log10(amplitude / np.percentile(amplitude, 99.5) + 1e-6)
    dynamic_range = rng.uniform(40, 60)
    scaled = (decibels + dynamic_range) / dynamic_range * rng.uniform(0.8, 1.0) - rng.uniform(0.1, 0.3)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)
